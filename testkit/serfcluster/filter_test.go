package serfcluster

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// TestHandlerFilterOnARealAgent registers a handler with serfdeploy's
// filter, which mixes user: and query: entries, and checks on real agents
// that serf accepts it and forks the handler for those events alone: not
// for joins, leaves, updates, nor for other user events and queries. A
// second, unfiltered handler (an operator's) still sees everything.
func TestHandlerFilterOnARealAgent(t *testing.T) {
	ours := protocol.HandlerFilter() + `=echo "$SERF_EVENT $SERF_USER_EVENT$SERF_QUERY_NAME" >> {dir}/ours; echo answer`
	theirs := `echo "$SERF_EVENT" >> {dir}/theirs`
	c := Start(t, Options{Handler: ours, ExtraHandlers: []string{theirs}}, NodeSpec{Name: "n1"}, NodeSpec{Name: "n2"})
	c.AddNode(t, NodeSpec{Name: "n3"})
	n4 := c.AddNode(t, NodeSpec{Name: "n4"})
	n4.Stop()
	c.WaitStatus(t, c.Node("n1"), "n4", "left", 0)

	rpc := c.Node("n1").RPCAddr
	serf := func(args ...string) string {
		t.Helper()
		args = append([]string{args[0], "-rpc-addr", rpc}, args[1:]...)
		out, err := exec.Command("serf", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("serf %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	serf("event", "-coalesce=false", "other", "x")
	serf("event", "-coalesce=false", protocol.EventDeploy, "x")
	if out := serf("query", "-timeout", "2s", "other", "x"); strings.Contains(out, "answer") {
		t.Fatalf("a query outside the filter was answered:\n%s", out)
	}
	for _, q := range []string{protocol.QueryPuppetRun, protocol.QueryPuppetStatus, protocol.QueryPuppetDisable, protocol.QueryPuppetEnable} {
		if out := serf("query", "-timeout", "2s", q, "x"); strings.Count(out, "answer") != 3 {
			t.Fatalf("query %s: want an answer from each of 3 nodes:\n%s", q, out)
		}
	}

	want := "query puppet-disable,query puppet-enable,query puppet-status,query puppetrun,user deploy"
	for _, name := range []string{"n1", "n2", "n3"} {
		n := c.Node(name)
		if got := lines(t, filepath.Join(n.Dir, "ours")); got != want {
			t.Errorf("%s: serfdeploy's handler ran for\n%s\nwant\n%s", name, got, want)
		}
		if got := lines(t, filepath.Join(n.Dir, "theirs")); !strings.Contains(got, "member-join") || !strings.Contains(got, "member-leave") {
			t.Errorf("%s: the operator's unfiltered handler ran for %s, want member events too", name, got)
		}
		runs, err := HandlerRuns(n.LogPath, 0)
		if err != nil {
			t.Fatal(err)
		}
		theirs := strings.Count(lines(t, filepath.Join(n.Dir, "theirs")), ",") + 1
		total := 0
		for _, k := range runs {
			total += k
		}
		if total != 5+theirs {
			t.Errorf("%s: the agent's log counts %v handler runs, want 5 of ours and %d of theirs", name, runs, theirs)
		}
	}
}

// lines is a file's lines, sorted, joined with commas.
func lines(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	l := strings.Split(strings.TrimSpace(string(b)), "\n")
	sort.Strings(l)
	return strings.Join(l, ",")
}

package orchestrate

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// fleetOf is a fake cluster whose nodes answer an empty-id puppet-status
// with states[node] (a node missing from it is silent); it fails the test
// on any other query, or a status query with an id.
func fleetOf(t *testing.T, states map[string]*protocol.Status, tags map[string]map[string]string) *fakeRPC {
	t.Helper()
	f := &fakeRPC{}
	for _, n := range []string{"a1", "a2", "a3", "a4", "a5", "a6", "m1"} {
		f.add(n, serfrpc.StatusAlive, tags[n])
	}
	f.add("gone", serfrpc.StatusFailed, nil)
	f.answer = func(node, query string, payload []byte) []byte {
		var req protocol.StatusRequest
		if query != protocol.QueryPuppetStatus || json.Unmarshal(payload, &req) != nil || req.ID != "" {
			t.Errorf("the fleet view sent %s %s", query, payload)
			return nil
		}
		st, ok := states[node]
		if !ok {
			return nil
		}
		st.Node, st.Role = node, "agent"
		return statusJSON(*st)
	}
	return f
}

// fleetNow is the CLI's clock in these tests; runs are placed before it.
var fleetNow = time.Unix(1_800_000_000, 0)

func ago(d time.Duration) int64 { return fleetNow.Add(-d).Unix() }

// A fleet of each kind of node: by serfdeploy, outside it, failed, with no
// catalog, disabled, running outside serfdeploy, unreadable, silent.
func fleetStates() map[string]*protocol.Status {
	return map[string]*protocol.Status{
		"a1": {Phase: "idle", Last: &protocol.Status{ID: "d1", Phase: protocol.PhaseFinished, Started: ago(10*time.Minute + 20*time.Second), Finished: ago(10 * time.Minute), Applied: "motd=abc"},
			Puppet: &protocol.PuppetState{At: ago(10 * time.Minute), Total: 10, Changed: 2, OutOfSync: 2, ConfigRetrieval: 1.5, Duration: 12, By: protocol.BySerfdeploy, Daemon: protocol.DaemonRunning}},
		"a2": {Phase: "idle", Puppet: &protocol.PuppetState{At: ago(2 * time.Hour), Version: "1796606075", Total: 20, Failed: 3, OutOfSync: 3, ConfigRetrieval: 2.5, Duration: 30, Fail: true, By: protocol.ByOther, Daemon: protocol.DaemonStopped}},
		"a3": {Phase: "idle", Disabled: "puppet agent is disabled: kernel upgrade, bob",
			Puppet: &protocol.PuppetState{At: ago(time.Hour), Total: 30, Changed: 1, OutOfSync: 1, ConfigRetrieval: 0.5, Duration: 6, By: protocol.ByOther, Daemon: protocol.DaemonRunning}},
		"a4": {Phase: "idle", Puppet: &protocol.PuppetState{At: ago(time.Minute), Total: 0, ConfigRetrieval: 3.5, Duration: 3, Fail: true, By: protocol.ByOther, Running: true}},
		"a5": {Phase: "idle", Puppet: &protocol.PuppetState{Error: "no /var/cache/puppet/public/last_run_summary.yaml: Puppet has not run here, or node.yaml's puppet.summary_file is wrong", Daemon: protocol.DaemonStopped}},
		"m1": {Phase: "idle"}, // an older serfdeploy: no puppet object
		// a6 is silent.
	}
}

func TestSummaryOfAFleet(t *testing.T) {
	f := fleetOf(t, fleetStates(), nil)
	nodes, err := askFleet(context.Background(), f, serfrpc.Filter{}, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	rep := summarize("", nodes, fleetNow)
	if rep.Total != 7 || rep.Answered != 6 || rep.WithFigures != 4 || rep.ExitCode != ExitIncomplete {
		t.Fatalf("counts %+v", rep)
	}
	want := map[string]Figures{
		"age":     {Min: 60, Avg: (600 + 7200 + 3600 + 60) / 4.0, Max: 7200, Nodes: 4},
		"cfg":     {Min: 0.5, Avg: 2, Max: 3.5, Nodes: 4},
		"run":     {Min: 3, Avg: 12.75, Max: 30, Nodes: 4},
		"total":   {Min: 0, Avg: 15, Max: 30, Nodes: 4},
		"changed": {Min: 0, Avg: 0.75, Max: 2, Nodes: 4},
		"failed":  {Min: 0, Avg: 0.75, Max: 3, Nodes: 4},
		"oos":     {Min: 0, Avg: 1.5, Max: 3, Nodes: 4},
	}
	got := map[string]Figures{"age": rep.LastRunAge, "cfg": rep.ConfigRetrieval, "run": rep.RunTime, "total": rep.Resources.Total,
		"changed": rep.Resources.Changed, "failed": rep.Resources.Failed, "oos": rep.Resources.OutOfSync}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %+v, want %+v", k, got[k], w)
		}
	}
	if rep.BySerfdeploy != 1 || rep.ByOther != 3 {
		t.Errorf("by serfdeploy %d, other %d", rep.BySerfdeploy, rep.ByOther)
	}
	names := func(notes []NodeNote) string {
		var out []string
		for _, n := range notes {
			out = append(out, n.Node+"("+n.Detail+")")
		}
		return strings.Join(out, " ")
	}
	for what, c := range map[string]struct {
		notes []NodeNote
		want  string
	}{
		"oldest":     {rep.Oldest, "a2(outside serfdeploy) a3(outside serfdeploy) a1(by serfdeploy) a4(outside serfdeploy)"},
		"failed":     {rep.Failed, "a2(3 of 20 resources failed, outside serfdeploy) a4(no catalog applied, outside serfdeploy)"},
		"disabled":   {rep.Disabled, "a3(puppet agent is disabled: kernel upgrade, bob)"},
		"running":    {rep.Running, "a4(outside serfdeploy (Puppet's catalog lock is held))"},
		"no answer":  {rep.NoAnswer, "a6(no answer within 50ms)"},
		"unreadable": {rep.Unreadable, "a5(no /var/cache/puppet/public/last_run_summary.yaml: Puppet has not run here, or node.yaml's puppet.summary_file is wrong) m1(its serfdeploy is too old to report Puppet's own state)"},
	} {
		if got := names(c.notes); got != c.want {
			t.Errorf("%s: %s\nwant %s", what, got, c.want)
		}
	}
	if rep.Oldest[0].At != ago(2*time.Hour) {
		t.Errorf("the oldest run's time: %+v", rep.Oldest[0])
	}
	// The node's own version is kept; one left out as the last run's is
	// taken from it.
	for _, n := range nodes {
		if v := map[string]string{"a1": "motd=abc", "a2": "1796606075"}[n.Node]; v != "" && n.Puppet.Version != v {
			t.Errorf("%s's version %q, want %q", n.Node, n.Puppet.Version, v)
		}
	}
}

func TestCountOfAFleet(t *testing.T) {
	states := fleetStates()
	states["a5"].Running = "d2" // serfdeploy's run, Puppet not started yet
	f := fleetOf(t, states, nil)
	rep, err := Count(context.Background(), f, serfrpc.Filter{}, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total != 7 || rep.Running != 2 || rep.Idle != 3 || rep.Disabled != 1 || rep.NoAnswer != 1 || rep.ExitCode != ExitIncomplete {
		t.Fatalf("count %+v", rep)
	}
	if rep.Daemon != (DaemonCount{Running: 2, Stopped: 2, Unknown: 2}) {
		t.Fatalf("daemons %+v", rep.Daemon)
	}
	state := map[string]string{}
	for _, n := range rep.Nodes {
		state[n.Node] = n.State
	}
	if state["a4"] != FleetRunning || state["a5"] != FleetRunning || state["a3"] != FleetDisabled || state["a6"] != FleetNoAnswer || state["m1"] != FleetIdle {
		t.Fatalf("states %v", state)
	}

	// Every node answered: exit 0. A filter: only its nodes.
	delete(states, "a6")
	f = fleetOf(t, states, map[string]map[string]string{"a1": {"segment": "qa"}, "a2": {"segment": "qa"}})
	rep, err = Count(context.Background(), f, serfrpc.Filter{Tags: map[string]string{"segment": "qa"}}, 50*time.Millisecond)
	if err != nil || rep.Total != 2 || rep.Idle != 2 || rep.ExitCode != ExitOK || rep.Filter != "--tag segment=qa" {
		t.Fatalf("count of segment=qa: %+v %v", rep, err)
	}
}

func TestFleetViewExitCodes(t *testing.T) {
	f := fleetOf(t, fleetStates(), nil)
	var e *Error
	_, err := Summary(context.Background(), f, serfrpc.Filter{Nodes: []string{"nobody"}}, time.Second)
	if !errors.As(err, &e) || e.Code != ExitNoTargets {
		t.Fatalf("nothing matched: %v", err)
	}
	_, err = Count(context.Background(), f, serfrpc.Filter{Tags: map[string]string{"segment": "(qa"}}, time.Second)
	if !errors.As(err, &e) || e.Code != ExitUsage {
		t.Fatalf("a bad tag regexp: %v", err)
	}
	rep, err := Summary(context.Background(), f, serfrpc.Filter{Nodes: []string{"a1", "a2"}}, time.Second)
	if err != nil || rep.ExitCode != ExitOK || rep.Total != 2 {
		t.Fatalf("two answering nodes: %+v %v", rep, err)
	}
}

// A node's answer that is not its own, or not an answer, is no answer;
// a node's text is one clean line.
func TestFleetViewReadsAnswersWarily(t *testing.T) {
	states := fleetStates()
	states["a3"].Disabled = "puppet agent is disabled: \x1b[31mred\x1b[0m\nsecond line"
	f := fleetOf(t, states, nil)
	f.override(func(node, query string) ([]byte, bool) {
		switch node {
		case "a1":
			return statusJSON(protocol.Status{Node: "a2", Phase: "idle"}), true
		case "a2":
			return []byte("not json"), true
		}
		return nil, false
	})
	rep, err := Count(context.Background(), f, serfrpc.Filter{}, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range rep.Nodes {
		switch n.Node {
		case "a1", "a2":
			if n.State != FleetNoAnswer || !strings.Contains(n.Problem, "unreadable answer") {
				t.Errorf("%s: %+v", n.Node, n)
			}
		case "a3":
			if strings.ContainsAny(n.Disabled, "\x1b\n") || !strings.Contains(n.Disabled, "red") {
				t.Errorf("a3's reason %q", n.Disabled)
			}
		}
	}
}

// serfdeploy's last run, newer than Puppet's summary and failed before
// Puppet wrote one, is the node's last run: failed.
func TestSummaryCountsSerfdeploysRunWithoutSummaryAsLast(t *testing.T) {
	states := map[string]*protocol.Status{
		"a1": {Phase: "idle", Last: &protocol.Status{ID: "d9", Phase: protocol.PhaseFailed, Reason: protocol.ReasonWorkerDied, Message: "its worker died",
			Started: ago(time.Minute), Finished: ago(30 * time.Second)},
			Puppet: &protocol.PuppetState{At: ago(time.Hour), Total: 10, By: protocol.ByOther}},
	}
	f := fleetOf(t, states, nil)
	nodes, err := askFleet(context.Background(), f, serfrpc.Filter{Nodes: []string{"a1"}}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rep := summarize("", nodes, fleetNow)
	if len(rep.Failed) != 1 || !strings.Contains(rep.Failed[0].Detail, "serfdeploy's run d9") || !strings.Contains(rep.Failed[0].Detail, "worker_died") {
		t.Fatalf("failed %+v", rep.Failed)
	}
}

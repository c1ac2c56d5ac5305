package orchestrate

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// rolloutCluster: a master and six qa agents that run when the run
// request reaches them and keep their record of it, as real nodes do; the
// agents named in failing fail.
func rolloutCluster(failing ...string) *fakeRPC {
	f := &fakeRPC{}
	f.add("m1", serfrpc.StatusAlive, map[string]string{"role": "puppetmaster"})
	for i := 1; i <= 6; i++ {
		f.add(fmt.Sprintf("qa%d", i), serfrpc.StatusAlive, map[string]string{"segment": "qa"})
	}
	var mu sync.Mutex
	ran := map[string]int{} // polls since the run request arrived
	f.answer = func(node, query string, payload []byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		var req protocol.StatusRequest
		_ = json.Unmarshal(payload, &req)
		switch {
		case query == protocol.QueryPuppetRun:
			if _, ok := ran[node]; !ok {
				ran[node] = 0
			}
			b, _ := json.Marshal(protocol.RunAnswer{V: 1, Node: node, Result: protocol.RunStarted})
			return b
		case node == "m1":
			return statusJSON(protocol.Status{Node: node, Role: "master", ID: req.ID, Phase: protocol.PhaseUnknown, Sync: protocol.PhaseSynced, Commit: "abc123"})
		}
		polls, ok := ran[node]
		if !ok {
			return statusJSON(protocol.Status{Node: node, Role: "agent", ID: req.ID, Phase: protocol.PhaseUnknown})
		}
		ran[node] = polls + 1
		st := protocol.Status{Node: node, Role: "agent", ID: req.ID, Phase: protocol.PhaseRunning, Targets: 6}
		if polls >= 1 {
			st = finishedOK(node)
			st.Node, st.Role, st.ID, st.Targets = node, "agent", req.ID, 6
			for _, n := range failing {
				if n == node {
					st.Phase, st.Exit, st.Failed = protocol.PhaseFailed, intp(6), 1
				}
			}
		}
		return statusJSON(st)
	}
	return f
}

// TestRolloutCountsEachTargetOnce: each batch follows its own nodes; the
// nodes of earlier batches, which still answer for the deploy, are not
// taken for late joiners. It counted them again in every later batch: 12
// node entries for 6 targets, a failure counted twice against
// --max-failures, the last batch never started, and the JUnit file listed
// nodes twice.
func TestRolloutCountsEachTargetOnce(t *testing.T) {
	for _, c := range []struct {
		failing []string
		budget  string
		want    int
	}{
		{nil, "", ExitOK},
		{[]string{"qa1"}, "1", ExitFailed},
	} {
		f := rolloutCluster(c.failing...)
		opts := qaOptions("rollout-once")
		opts.Batch, opts.MaxFailures = "2", c.budget
		opts.PollInterval = 5 * time.Millisecond
		res, err := Deploy(context.Background(), f, opts)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, n := range res.Nodes {
			seen[n.Node]++
			if n.JoinedLate {
				t.Errorf("%v: %s taken for a late joiner", c.failing, n.Node)
			}
		}
		if len(res.Nodes) != 6 || len(seen) != 6 {
			t.Fatalf("%v: %d node entries for 6 targets: %v", c.failing, len(res.Nodes), seen)
		}
		states := nodeStates(res)
		for i := 1; i <= 6; i++ {
			name := fmt.Sprintf("qa%d", i)
			want := StateFinished
			if len(c.failing) > 0 && name == c.failing[0] {
				want = StateFailed
			}
			if states[name] != want {
				t.Fatalf("%v: %s %s, want %s (every batch runs: one failure is within --max-failures 1)", c.failing, name, states[name], want)
			}
		}
		if res.ExitCode != c.want {
			t.Fatalf("%v: exit %d, want %d", c.failing, res.ExitCode, c.want)
		}
	}
}

package orchestrate

import (
	"context"
	"strings"
	"testing"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// withRequest makes every agent's answer say which request its record is for.
func withRequest(f *fakeRPC, node string, req protocol.Request) {
	inner := f.answer
	f.answer = func(n, q string, p []byte) []byte {
		b := inner(n, q, p)
		if n != node || b == nil || q != protocol.QueryPuppetStatus {
			return b
		}
		st := decodeStatus(b)
		st.Request = req
		return statusJSON(st)
	}
}

// masterReached makes the master say its trigger reached n nodes.
func masterReached(f *fakeRPC, n int) {
	inner := f.answer
	f.answer = func(node, q string, p []byte) []byte {
		if node == "m1" && q == protocol.QueryPuppetStatus {
			st := decodeStatus(inner(node, q, p))
			st.Reached = n
			return statusJSON(st)
		}
		return inner(node, q, p)
	}
}

// TestExplicitIDUsedForAnotherRequestIsRefused: `--id X` that already names
// a deploy of motd at v1 is refused for motd at v2 (exit 2, naming what the
// id was used for) and nothing is fired. Before, the records of v1 were
// reported as v2's results, exit 0.
func TestExplicitIDUsedForAnotherRequestIsRefused(t *testing.T) {
	f := cluster(finishedOK)
	withRequest(f, "qa1", protocol.Request{Module: "motd", Ref: "v1", Environment: "production"})
	opts := qaOptions("release-1")
	opts.Ref, opts.IDGiven = "v2", true
	refusedBeforeFiring(t, f, opts, ExitUsage, "deploy of motd at v1")
}

// TestAnswersForAnotherRequestAreNotCounted: during the watch, a node
// whose record of the id is for another ref is never counted as done.
func TestAnswersForAnotherRequestAreNotCounted(t *testing.T) {
	f := cluster(finishedOK)
	withRequest(f, "qa2", protocol.Request{Module: "motd", Ref: "v1", Environment: "production"})
	opts := qaOptions("d-other")
	opts.Ref = "v2"
	res, _ := Deploy(context.Background(), f, opts)
	if res == nil || res.ExitCode == ExitOK {
		t.Fatalf("a node with a v1 record counted for v2: %+v", res)
	}
	for _, n := range res.Nodes {
		if n.Node == "qa2" && n.State == StateFinished {
			t.Fatalf("qa2 counted finished: %+v", n)
		}
	}
}

// TestNodeTheTriggerReachedIsFollowed: a node the CLI did not list
// (it joined just before) but that answers for the deploy is added as a
// target, and its failure fails the deploy. Before, it was ignored: exit 0.
func TestNodeTheTriggerReachedIsFollowed(t *testing.T) {
	f := cluster(func(node string) protocol.Status {
		if node == "late" {
			return protocol.Status{Phase: protocol.PhaseFailed, Reason: protocol.ReasonResourcesFailed, Exit: intp(6)}
		}
		return finishedOK(node)
	})
	masterReached(f, 3)
	f.onPoll = func(f *fakeRPC, poll int) {
		if poll == 1 {
			f.add("late", serfrpc.StatusAlive, map[string]string{"segment": "qa"})
		}
	}
	res, err := Deploy(context.Background(), f, qaOptions("d-late"))
	if err != nil || res.ExitCode != ExitFailed {
		t.Fatalf("err %v result %+v", err, res)
	}
	var late *NodeResult
	for i := range res.Nodes {
		if res.Nodes[i].Node == "late" {
			late = &res.Nodes[i]
		}
	}
	if late == nil || !late.JoinedLate || late.State != StateFailed {
		t.Fatalf("late node %+v", late)
	}
}

// TestTriggerReachedMoreThanAnsweredIsNotGreen: a master that says its
// trigger reached three nodes while only two ever answered the CLI cannot
// end in exit 0.
func TestTriggerReachedMoreThanAnsweredIsNotGreen(t *testing.T) {
	f := cluster(finishedOK)
	masterReached(f, 3)
	res, _ := Deploy(context.Background(), f, qaOptions("d-reach"))
	if res == nil || res.ExitCode != ExitIncomplete || !strings.Contains(res.Outcome, "reached 3") {
		t.Fatalf("result %+v", res)
	}
}

// TestStaleRunFailsTheDeploy: a node whose run applied another commit of
// the module than the master installed for this deploy is stale, exit 1.
func TestStaleRunFailsTheDeploy(t *testing.T) {
	f := cluster(func(node string) protocol.Status {
		st := finishedOK(node)
		st.Applied = protocol.FormatCodeVersion(map[string]string{"motd": "abc123"})
		if node == "qa2" {
			st.Applied = protocol.FormatCodeVersion(map[string]string{"motd": "fff999"})
		}
		return st
	})
	res, err := Deploy(context.Background(), f, qaOptions("d-stale"))
	if err != nil {
		t.Fatal(err)
	}
	c := res.Counts()
	if res.ExitCode != ExitFailed || c[StateStale] != 1 || c[StateFinished] != 1 {
		t.Fatalf("exit %d counts %v", res.ExitCode, c)
	}
}

// TestUnknownRefIsBadInput: a ref the repository does not have is exit 2
// (no retry fixes it), with git's message.
func TestUnknownRefIsBadInput(t *testing.T) {
	f := cluster(finishedOK)
	inner := f.answer
	f.answer = func(n, q string, p []byte) []byte {
		if n == "m1" {
			return statusJSON(protocol.Status{Node: n, Role: "master", Phase: protocol.PhaseUnknown, Sync: protocol.PhaseFailed,
				SyncReason: protocol.ReasonUnknownRef, SyncMsg: "unknown git ref nope: fatal: couldn't find remote ref nope"})
		}
		return inner(n, q, p)
	}
	res, err := Deploy(context.Background(), f, qaOptions("d-ref"))
	if exitCode(t, err) != ExitUsage || !strings.Contains(err.Error(), "couldn't find remote ref") || res.ExitCode != ExitUsage {
		t.Fatalf("err %v", err)
	}
}

// TestInterruptBeforeTheWatchIsIncomplete: Ctrl-C while the targets are
// being listed or the event fired is exit 4, not 5.
func TestInterruptBeforeTheWatchIsIncomplete(t *testing.T) {
	f := cluster(finishedOK)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Deploy(ctx, &failingRPC{fakeRPC: f}, qaOptions("d-int"))
	if exitCode(t, err) != ExitIncomplete {
		t.Fatalf("err %v", err)
	}
}

// failingRPC fails every call the way serfrpc does when ctx has ended.
type failingRPC struct{ *fakeRPC }

func (f *failingRPC) Members(ctx context.Context, flt serfrpc.Filter, status string) ([]serfrpc.Member, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return f.fakeRPC.Members(ctx, flt, status)
}

// goneRPC answers members but loses the agent during a query.
type goneRPC struct{ *fakeRPC }

func (g *goneRPC) Query(context.Context, serfrpc.Query) (*serfrpc.QueryResult, error) {
	return &serfrpc.QueryResult{}, serfrpc.ErrGone
}

// TestStatusWhenTheAgentGoesAway: `status` whose agent goes away mid-query
// is an infrastructure failure (exit 5), not nodes that did not answer
// (exit 4).
func TestStatusWhenTheAgentGoesAway(t *testing.T) {
	_, err := Status(context.Background(), &goneRPC{cluster(finishedOK)}, serfrpc.Filter{}, "", 0)
	if exitCode(t, err) != ExitInfra {
		t.Fatalf("err %v", err)
	}
}

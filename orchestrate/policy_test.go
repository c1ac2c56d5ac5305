package orchestrate

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

func TestVersionMismatch(t *testing.T) {
	applied := "motd=0123456789abcdef ntp=fedcba9876543210"
	for expected, wantMatch := range map[string]bool{
		"motd=0123456789":                    true,
		"motd=0123456789abcdef ntp=fedcba98": true,
		"motd=ffff":                          false,
		"apache=0123":                        false,
		applied:                              true,
		"1795659420":                         false,
	} {
		msg := versionMismatch(applied, expected)
		if (msg == "") != wantMatch {
			t.Errorf("expect %q: %q", expected, msg)
		}
	}
	if msg := versionMismatch(applied, "apache=0123"); !strings.Contains(msg, "no serfdeploy version of apache") {
		t.Errorf("missing module: %q", msg)
	}
}

func TestBatches(t *testing.T) {
	var targets []serfrpc.Member
	for _, n := range []string{"n5", "n1", "n4", "n2", "n3", "n6", "n7"} {
		targets = append(targets, serfrpc.Member{Name: n})
	}
	for _, c := range []struct {
		opts Options
		want string
	}{
		{Options{Batch: "3"}, "n1 n2 n3|n4 n5 n6|n7"},
		{Options{Batch: "30%"}, "n1 n2 n3|n4 n5 n6|n7"}, // 30% of 7 rounds up to 3
		{Options{Canary: 1}, "n1|n2 n3 n4 n5 n6 n7"},
		{Options{Canary: 2, Batch: "4"}, "n1 n2|n3 n4 n5 n6|n7"},
		{Options{Canary: 9}, "n1 n2 n3 n4 n5 n6 n7"},
	} {
		var parts []string
		for _, b := range batches(targets, &c.opts) {
			parts = append(parts, strings.Join(names(b), " "))
		}
		if got := strings.Join(parts, "|"); got != c.want {
			t.Errorf("%+v: %s, want %s", c.opts, got, c.want)
		}
	}
	for _, bad := range []Options{{Batch: "0%"}, {Batch: "0"}, {Batch: "x"}, {Batch: "101%"}, {MaxFailures: "1"}, {Canary: 1, MaxFailures: "-1"}} {
		if err := bad.checkRollout(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestNodeJoinedBeforeTheTriggerIsFound: a node that joined after the
// targets were listed matches the filter, got the master's trigger and
// failed; the master counted only the nodes it listed. It must not be left
// out (the fault campaign's false green, scenario 21).
func TestNodeJoinedBeforeTheTriggerIsFound(t *testing.T) {
	f := cluster(finishedOK)
	lateJoinerFails(f, "d-late")
	res, err := Deploy(context.Background(), f, qaOptions("d-late"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]NodeResult{}
	for _, n := range res.Nodes {
		got[n.Node] = n
	}
	if n, ok := got["qa3"]; !ok || n.State != StateFailed || !n.JoinedLate || res.ExitCode != ExitFailed {
		t.Fatalf("qa3 %+v (found %v), exit %d", n, ok, res.ExitCode)
	}
}

// TestWatchCountsTheTriggersTargets: a watch that re-attached knows the
// targets only from their records. When a master's trigger was sent to more
// alive targets than have a record (one the gossip missed never ran), or
// the deploy's CLI listed more targets than have one (one left before the
// trigger; a batch an aborted rollout never started), it does not exit 0
// (the fault campaigns' false greens from `watch`).
func TestWatchCountsTheTriggersTargets(t *testing.T) {
	for _, c := range []struct {
		listed, targets int
		batched         bool
		want            int
	}{
		{listed: 3, want: ExitOK},
		{listed: 4, want: ExitIncomplete},
		{listed: 3, targets: 3, want: ExitOK},
		{listed: 3, targets: 4, want: ExitIncomplete},
		{targets: 3, batched: true, want: ExitOK},
		{targets: 5, batched: true, want: ExitIncomplete},
	} {
		f := cluster(finishedOK)
		f.polls = 5 // past the fake's "running" answers
		sync := protocol.PhaseTriggered
		if c.batched {
			sync = protocol.PhaseSynced
		}
		f.override(func(n, q string) ([]byte, bool) {
			return statusJSON(protocol.Status{Node: n, Role: "master", ID: "w1", Phase: protocol.PhaseUnknown, Sync: sync, Batched: c.batched,
				Commit: "abc123", Reached: c.listed, Listed: c.listed, Targets: c.targets, Request: protocol.Request{Module: "motd", Ref: "v1"}}), n == "m1" && q == protocol.QueryPuppetStatus
		})
		opts := fastOptions("w1")
		opts.Timeout = 5 * time.Second // a batched master left waiting would run it out
		res, err := Watch(context.Background(), f, opts)
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != c.want || len(res.Nodes) != 3 {
			t.Fatalf("%+v: exit %d (%s), %d nodes", c, res.ExitCode, res.Outcome, len(res.Nodes))
		}
	}
}

// TestLateJoinerCountsAtTheTimeout: one target hangs until the timeout; a
// node that joined just before the trigger (the master did not count it)
// ran the deploy and failed. The failure is the deploy's code (1), not the
// timeout's (4): the oracle's wrong code, seed 2 scenarios 6 and 65. The
// check runs before the deadline, while the agent connection is open.
func TestLateJoinerCountsAtTheTimeout(t *testing.T) {
	f := cluster(finishedOK)
	f.answer = wrapSilent(f.answer, "qa1")
	lateJoinerFails(f, "d-hang")
	opts := qaOptions("d-hang")
	opts.Timeout = 2 * time.Second
	res, err := Deploy(context.Background(), f, opts)
	if err != nil {
		t.Fatal(err)
	}
	states := nodeStates(res)
	if res.ExitCode != ExitFailed || states["qa3"] != StateFailed || states["qa1"] != StateTimeout {
		t.Fatalf("exit %d (%s), states %v", res.ExitCode, res.Outcome, states)
	}
}

// TestWatchCountsARunsTargets: `run` puts its target count in the
// puppetrun request; each node keeps it in its record, and a watch that
// re-attached to a run finds fewer records than that does not exit 0.
func TestWatchCountsARunsTargets(t *testing.T) {
	f := cluster(finishedOK)
	res, err := Run(context.Background(), f, qaOptions("r1"))
	if err != nil || res.ExitCode != ExitOK {
		t.Fatalf("run: %v %+v", err, res)
	}
	var req protocol.RunRequest
	for _, q := range f.queries {
		if q.Name == protocol.QueryPuppetRun {
			if err := json.Unmarshal(q.Payload, &req); err != nil {
				t.Fatal(err)
			}
		}
	}
	if req.ID != "r1" || req.Targets != 2 {
		t.Fatalf("puppetrun request %+v: want the 2 qa targets counted", req)
	}

	for _, targets := range []int{3, 4} {
		f := cluster(func(string) protocol.Status {
			st := finishedOK("")
			st.Targets = targets
			return st
		})
		f.polls = 5
		f.override(func(n, q string) ([]byte, bool) { // a run: no master has a record
			return statusJSON(protocol.Status{Node: n, Role: "master", ID: "r2", Phase: protocol.PhaseUnknown, Sync: protocol.PhaseUnknown}), n == "m1"
		})
		res, err := Watch(context.Background(), f, fastOptions("r2"))
		if err != nil {
			t.Fatal(err)
		}
		want := map[int]int{3: ExitOK, 4: ExitIncomplete}[targets]
		if res.ExitCode != want || res.Kind != "run" || len(res.Nodes) != 3 {
			t.Fatalf("targets %d: exit %d (%s), kind %s, %d nodes", targets, res.ExitCode, res.Outcome, res.Kind, len(res.Nodes))
		}
	}
}

// lateJoinerFails makes qa3 (segment qa) join after the first poll, with
// a failed run of id: it got the master's trigger, which did not count it.
func lateJoinerFails(f *fakeRPC, id string) {
	inner := f.answer
	f.answer = func(n, q string, p []byte) []byte {
		if n == "qa3" && q == protocol.QueryPuppetStatus {
			return statusJSON(protocol.Status{Node: n, Role: "agent", ID: id, Phase: protocol.PhaseFailed,
				Reason: protocol.ReasonResourcesFailed, Exit: intp(6), Failed: 1, Request: protocol.Request{Module: "motd", Ref: "v1"}})
		}
		return inner(n, q, p)
	}
	f.onPoll = func(f *fakeRPC, poll int) {
		if poll == 1 {
			f.add("qa3", serfrpc.StatusAlive, map[string]string{"segment": "qa"})
		}
	}
}

// TestWatchAsksEveryNodeUntilItAnswers: a re-attached watch asks every
// alive node for its record of the id, and asks again those that do not
// answer. A master that never does keeps the watch from exit 0 (it holds
// the deploy's target count), and with no record found anywhere it is
// exit 5, not "nothing ran" (3); another silent node is only noted, and a
// target among them is caught by the master's count. Before, one query
// listened 1.5 s, and a node whose answer was lost dropped out: exit 0
// (the oracle's false green, seed 4 scenario 72).
func TestWatchAsksEveryNodeUntilItAnswers(t *testing.T) {
	noRecord := func(n string) []byte {
		return statusJSON(protocol.Status{Node: n, Role: "agent", ID: "w3", Phase: protocol.PhaseUnknown})
	}
	master := func(n string, targets int) []byte {
		return statusJSON(protocol.Status{Node: n, Role: "master", ID: "w3", Phase: protocol.PhaseUnknown, Sync: protocol.PhaseTriggered,
			Commit: "abc123", Targets: targets, Request: protocol.Request{Module: "motd", Ref: "v1"}})
	}
	for _, c := range []struct {
		name   string
		answer func(n string) ([]byte, bool) // false: as the fake cluster answers
		code   int
		want   string
	}{
		{"a silent master", func(n string) ([]byte, bool) { return nil, n == "m1" },
			ExitIncomplete, "1 master(s) never answered whether they have a record of it (m1)"},
		{"a silent target, counted by its master", func(n string) ([]byte, bool) {
			if n == "m1" {
				return master(n, 3), true
			}
			return nil, n == "qa2"
		}, ExitIncomplete, "the deploy listed 3 target(s) and only 2 have a record of it"},
		{"a silent master, no record anywhere", func(n string) ([]byte, bool) {
			if n == "m1" {
				return nil, true
			}
			return noRecord(n), true
		}, ExitInfra, "1 master(s) did not answer (m1)"},
		{"a silent node, no record anywhere", func(n string) ([]byte, bool) {
			if n == "qa2" {
				return nil, true
			}
			return noRecord(n), true
		}, ExitNoTargets, "no node has a record of deploy id w3"},
	} {
		f := cluster(finishedOK)
		f.polls = 5
		f.override(func(n, q string) ([]byte, bool) { return c.answer(n) })
		res, err := Watch(context.Background(), f, fastOptions("w3"))
		var code int
		var got string
		if err != nil {
			code, got = exitCode(t, err), err.Error()
		} else {
			code, got = res.ExitCode, res.Outcome
		}
		if code != c.code || !strings.Contains(got, c.want) {
			t.Errorf("%s: exit %d (%s), want %d (%s)", c.name, code, got, c.code, c.want)
		}
	}
}

// TestJoinerNotYetListedIsNotLost: a node that joined just before the
// trigger runs the deploy and answers before the gossip of its join
// reaches the CLI's agent, which does not list it yet. It is followed to
// its end, not reported lost ("gone (reaped)") at the next poll: the
// oracle's wrong code, seed 6 scenario 1.
func TestJoinerNotYetListedIsNotLost(t *testing.T) {
	f := cluster(finishedOK)
	f.override(func(n, q string) ([]byte, bool) {
		switch {
		case q != protocol.QueryPuppetStatus:
			return nil, false
		case n == "m1":
			return statusJSON(protocol.Status{Node: n, Role: "master", ID: "d-unlisted", Phase: protocol.PhaseUnknown, Sync: protocol.PhaseTriggered,
				Commit: "abc123", Reached: 3, Listed: 2}), true
		case n == "qa3" && f.polls < 8: // still running for a few polls after it is found
			return statusJSON(protocol.Status{Node: n, Role: "agent", ID: "d-unlisted", Phase: protocol.PhaseRunning}), true
		}
		return nil, false
	})
	f.onPoll = func(f *fakeRPC, poll int) {
		if poll == 1 {
			f.add("qa3", serfrpc.StatusAlive, map[string]string{"segment": "qa"})
			f.unlisted = map[string]bool{"qa3": true}
		}
	}
	res, err := Deploy(context.Background(), f, qaOptions("d-unlisted"))
	if err != nil {
		t.Fatal(err)
	}
	states := nodeStates(res)
	if res.ExitCode != ExitOK || states["qa3"] != StateFinished {
		t.Fatalf("exit %d (%s), states %v", res.ExitCode, res.Outcome, states)
	}
}

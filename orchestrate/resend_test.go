package orchestrate

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// Resends under load (issue: 100 agents that joined one by one made a
// deploy time out while every run finished; each late answer brought
// another event or query, which queued behind the same backlog).

// A master that acknowledges the status query but has not answered yet is
// busy, not deaf: the deploy event is not fired again at the whole fleet.
func TestBusyMasterDoesNotGetTheEventAgain(t *testing.T) {
	f := cluster(finishedOK)
	inner := f.answer
	f.answer = func(n, q string, p []byte) []byte {
		if n == "m1" && f.polls < 6 {
			return nil // acknowledged, answer still queued behind other handler runs
		}
		return inner(n, q, p)
	}
	opts := qaOptions("busy-1")
	opts.PollInterval = 10 * time.Millisecond
	opts.ResendAfter = time.Millisecond
	res, err := Deploy(context.Background(), f, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.events) != 1 || res.ExitCode != ExitOK {
		t.Fatalf("%d deploy events, exit %d: a busy master must not be sent the event again", len(f.events), res.ExitCode)
	}
}

// A target that acknowledged the polls but has not answered is not sent
// the run request again: the request is most likely in its queue.
func TestBusyTargetDoesNotGetTheRunAgain(t *testing.T) {
	f := cluster(finishedOK)
	inner := f.answer
	f.answer = func(n, q string, p []byte) []byte {
		if n == "qa2" && q == protocol.QueryPuppetStatus && f.polls < 8 {
			return nil
		}
		return inner(n, q, p)
	}
	opts := qaOptions("busy-2")
	opts.PollInterval = 10 * time.Millisecond
	opts.ResendAfter = time.Millisecond
	res, err := Deploy(context.Background(), f, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range f.queries {
		if q.Name == protocol.QueryPuppetRun {
			t.Fatalf("run request sent to %v: a busy target must not be sent it again", q.Filter.Nodes)
		}
	}
	if res.ExitCode != ExitOK {
		t.Fatalf("exit %d", res.ExitCode)
	}
}

// Nodes that answer and know nothing of the deploy are sent it again, but
// at most maxResends times in all, each wait twice the one before.
func TestResendsAreBounded(t *testing.T) {
	f := cluster(finishedOK)
	f.override(func(n, q string) ([]byte, bool) {
		// No node ever hears of the deploy.
		return statusJSON(protocol.Status{Node: n, Phase: protocol.PhaseUnknown}), q == protocol.QueryPuppetStatus
	})
	opts := qaOptions("bounded-1")
	opts.PollInterval = time.Millisecond
	opts.ResendAfter = time.Millisecond
	opts.Timeout = 300 * time.Millisecond
	_, _ = Deploy(context.Background(), f, opts)
	if len(f.events) != 1+maxResends {
		t.Fatalf("%d deploy events, want the first and %d resends", len(f.events), maxResends)
	}
}

// A target whose record of the run is gone after it was seen pending (its
// handler was stopped before a worker took the request, and the node gave
// the record up) waits again and is sent the request again; it was left
// pending to the timeout.
func TestPendingTargetThatLostItsRecordIsAskedAgain(t *testing.T) {
	f := cluster(finishedOK)
	inner := f.answer
	resent := false
	f.answer = func(n, q string, p []byte) []byte {
		if n != "qa2" {
			return inner(n, q, p)
		}
		switch {
		case q == protocol.QueryPuppetRun:
			resent = true
			b, _ := json.Marshal(protocol.RunAnswer{V: 1, Node: n, Result: protocol.RunStarted})
			return b
		case resent:
			return inner(n, q, p)
		case f.polls < 3:
			return statusJSON(protocol.Status{Node: n, Role: "agent", Phase: protocol.PhasePending})
		}
		return statusJSON(protocol.Status{Node: n, Role: "agent", Phase: protocol.PhaseUnknown, Message: "record runs/x/run.json was claimed but never written"})
	}
	opts := qaOptions("orphan-2")
	opts.PollInterval = 10 * time.Millisecond
	opts.ResendAfter = time.Millisecond
	opts.MissedAfter = time.Minute
	res, err := Deploy(context.Background(), f, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !resent || res.ExitCode != ExitOK || nodeStates(res)["qa2"] != StateFinished {
		t.Fatalf("resent %v, exit %d, states %v", resent, res.ExitCode, nodeStates(res))
	}
}

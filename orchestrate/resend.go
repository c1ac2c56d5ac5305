package orchestrate

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// Serf delivers events and queries by gossip, best effort: a node that has
// just joined, or whose packets were lost, can miss one (seen here: a node
// that joined a second before a deploy got neither the event nor the
// puppetrun query, and learnt of the event 15 s later by anti-entropy).
// Nodes dedupe by deploy id, so sending again is always safe; the watcher
// does so rather than wait and report them missed.

// Under load, sending again feeds the load: a node whose serf handler
// queue is backed up (a fleet that is forming or restarting, measured here
// with 100 agents that joined one by one) answers late, and every event or
// query sent again adds one more handler run to that queue, on every node
// for an event. So a resend goes only to nodes that cannot still answer
// the earlier one, the wait before each doubles, and a deploy sends at
// most maxResends of each kind.
const maxResends = 3

// resends counts what the watch sent again and remembers which nodes are
// busy: they acknowledged the last query (serf delivered it) but had not
// answered when it ended, so their handler queue is behind, not empty of
// our request.
type resends struct {
	events, runs int
	busy         map[string]bool
}

// wait is how long after the last send the next resend may go: ResendAfter,
// doubled for each resend already made.
func (r *resends) wait(base time.Duration, made int) time.Duration {
	return base << made
}

// note records from a finished query which nodes are busy.
func (r *resends) note(q serfrpc.Query, res *serfrpc.QueryResult) {
	if res == nil || len(q.Expect) == 0 {
		return
	}
	if r.busy == nil {
		r.busy = map[string]bool{}
	}
	answered := make(map[string]bool, len(res.Responses))
	for _, resp := range res.Responses {
		answered[resp.From] = true
	}
	for _, n := range res.Acks {
		r.busy[n] = !answered[n]
	}
}

// resend fires the deploy event again while no master has heard of it, and
// the puppetrun query again to targets that know nothing of the run after
// the trigger.
func (w *watch) resend(ctx context.Context) error {
	r, s := &w.resends, w.s
	if w.eventPayload != nil && s.triggeredAt.IsZero() && w.noMasterHeard() {
		if r.events >= maxResends || w.anyMasterBusy() || time.Since(w.lastSent) < r.wait(w.opts.ResendAfter, r.events) {
			return nil
		}
		r.events++
		w.lastSent = time.Now()
		w.observer.note(fmt.Sprintf("no master has answered for the deploy yet: firing the deploy event again (%d of at most %d)", r.events, maxResends))
		return w.rpc.FireEvent(ctx, protocol.EventDeploy, w.eventPayload, false)
	}
	if w.runPayload == nil || s.triggeredAt.IsZero() || r.runs >= maxResends {
		return nil // a watch that re-attached sends nothing
	}
	// Each target waits from when the request went to it: with
	// --concurrency, requests go out all the time.
	wait := r.wait(w.opts.ResendAfter, r.runs)
	if time.Since(w.lastResend) < wait {
		return nil
	}
	var waiting []string
	for _, name := range s.order {
		sent, ok := s.sentAt[name]
		if !ok {
			sent = s.triggeredAt
		}
		if s.targets[name].State == StateWaiting && s.active(name) && !r.busy[name] && time.Since(sent) >= w.opts.ResendAfter {
			waiting = append(waiting, name)
		}
	}
	if len(waiting) == 0 {
		return nil
	}
	r.runs++
	w.lastSent, w.lastResend = time.Now(), time.Now()
	w.observer.note(fmt.Sprintf("no sign of the run on %d node(s) yet: sending them the run request again (%d of at most %d)", len(waiting), r.runs, maxResends))
	res, err := w.query(ctx, serfrpc.Query{
		Name: protocol.QueryPuppetRun, Payload: w.runPayload,
		Filter: serfrpc.Filter{Nodes: waiting}, Timeout: w.opts.QueryTimeout, Expect: waiting, Resend: resendQuery,
	})
	if err != nil && res == nil {
		return err
	}
	for _, r := range res.Responses {
		s.apply(runAnswer{At: time.Now(), From: r.From, Payload: r.Payload})
	}
	return nil
}

// anyMasterBusy: a master has our queries but its handler queue is behind;
// the deploy event is most likely waiting in that same queue.
func (w *watch) anyMasterBusy() bool {
	for name := range w.s.masters {
		if w.resends.busy[name] {
			return true
		}
	}
	return false
}

func (w *watch) noMasterHeard() bool {
	for _, m := range w.s.masters {
		if m.Phase != protocol.PhaseUnknown {
			return false
		}
	}
	return true
}

// runRequest is the puppetrun payload for this watch.
func runRequest(opts *Options, targets int) []byte {
	b, _ := json.Marshal(protocol.RunRequest{
		ID: opts.ID, Environment: opts.Environment, Module: opts.Module, Ref: opts.Ref,
		SkipMasters: opts.Filter.Empty(), Build: opts.Build, PuppetFlags: opts.Puppet, WaitSec: opts.waitSec(),
		Targets: targets,
	})
	return b
}

// resendQuery is how long a query waits for an expected node before asking
// it again (serfrpc.Query.Resend): every query serfdeploy sends is
// idempotent on the nodes.
const resendQuery = time.Second

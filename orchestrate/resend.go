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

// resend fires the deploy event again while no master has heard of it, and
// the puppetrun query again to targets that know nothing of the run after
// the trigger.
func (w *watch) resend(ctx context.Context) error {
	if w.eventPayload != nil && w.triggeredAt.IsZero() && w.noMasterHeard() && time.Since(w.lastSent) >= w.opts.ResendAfter {
		w.lastSent = time.Now()
		w.observer.note("no master has answered for the deploy yet: firing the deploy event again")
		if err := w.rpc.FireEvent(ctx, protocol.EventDeploy, w.eventPayload, false); err != nil {
			return infra(err)
		}
		return nil
	}
	if w.runPayload == nil || w.triggeredAt.IsZero() || time.Since(w.triggeredAt) < w.opts.ResendAfter || time.Since(w.lastSent) < w.opts.ResendAfter {
		return nil // a watch that re-attached sends nothing
	}
	var waiting []string
	for _, name := range w.order {
		if w.targets[name].State == StateWaiting {
			waiting = append(waiting, name)
		}
	}
	if len(waiting) == 0 {
		return nil
	}
	w.lastSent = time.Now()
	w.observer.note(fmt.Sprintf("no sign of the run on %d node(s) yet: sending them the run request again", len(waiting)))
	res, err := w.query(ctx, serfrpc.Query{
		Name: protocol.QueryPuppetRun, Payload: w.runPayload,
		Filter: serfrpc.Filter{Nodes: waiting}, Timeout: w.opts.QueryTimeout, Expect: waiting, Resend: resendQuery,
	})
	if err != nil && res == nil {
		return infra(err)
	}
	for _, r := range res.Responses {
		w.runAnswer(r)
	}
	return nil
}

func (w *watch) noMasterHeard() bool {
	for _, m := range w.masters {
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

package orchestrate

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// A rollout (--batch, --canary) starts the runs batch by batch instead of
// all at once: the masters only install the code, then the CLI fires
// puppetrun at each batch and watches it to the end before the next. Once
// more targets have failed than --max-failures allows, no further batch
// starts and the targets not started are reported skipped.

// batched reports whether the runs go out in batches.
func (o *Options) batched() bool { return o.Batch != "" || o.Canary > 0 }

// checkRollout validates --batch, --canary and --max-failures.
func (o *Options) checkRollout() error {
	if o.Batch != "" {
		if n, err := parseCount(o.Batch, 100); err != nil || n == 0 {
			if err == nil {
				err = fmt.Errorf("a batch has at least one node")
			}
			return Errorf(ExitUsage, "--batch %q: %w", o.Batch, err)
		}
	}
	if o.MaxFailures != "" {
		if !o.batched() {
			return Errorf(ExitUsage, "--max-failures is a budget between batches: give --batch or --canary too")
		}
		if _, err := parseCount(o.MaxFailures, 100); err != nil {
			return Errorf(ExitUsage, "--max-failures %q: %w", o.MaxFailures, err)
		}
	}
	if o.Canary < 0 {
		return Errorf(ExitUsage, "--canary must be positive (got %d)", o.Canary)
	}
	return nil
}

// parseCount reads "N" or "N%" of total (a percentage rounds up, so that
// 10% of 5 is 1, not 0).
func parseCount(s string, total int) (int, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v <= 0 || v > 100 {
			return 0, fmt.Errorf("a percentage must be above 0 and at most 100, e.g. 25%%")
		}
		return int(math.Ceil(v * float64(total) / 100)), nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("must be a count or a percentage, e.g. 5 or 25%%")
	}
	return v, nil
}

// batches splits the targets (by name) into the canary batch, then
// batches of --batch (the rest at once without it).
func batches(targets []serfrpc.Member, opts *Options) [][]serfrpc.Member {
	sorted := append([]serfrpc.Member(nil), targets...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var out [][]serfrpc.Member
	if opts.Canary > 0 {
		n := min(opts.Canary, len(sorted))
		out, sorted = append(out, sorted[:n]), sorted[n:]
	}
	size := len(sorted)
	if opts.Batch != "" {
		size, _ = parseCount(opts.Batch, len(targets))
	}
	for size = max(size, 1); len(sorted) > 0; {
		n := min(size, len(sorted))
		out, sorted = append(out, sorted[:n]), sorted[n:]
	}
	return out
}

// rollout runs a deploy (masters given, the event already built with
// SyncOnly) or a run batch by batch.
func rollout(ctx context.Context, rpc RPC, opts Options, kind string, targets, masters []serfrpc.Member, event []byte) (*Result, error) {
	started := time.Now()
	plan := batches(targets, &opts)
	budget := math.MaxInt
	if opts.MaxFailures != "" {
		budget, _ = parseCount(opts.MaxFailures, len(targets))
	} else if opts.batched() {
		budget = 0 // a batched rollout stops at the first failure unless told otherwise
	}
	res := NewResult(kind, opts)
	res.Started, res.Fired = started, true
	var synced map[string]*MasterResult
	if kind == "deploy" {
		mw := newWatch(rpc, &opts, kind, nil, masters)
		mw.res.Started = started
		var err error
		synced, err = mw.syncOnly(ctx, event)
		res.Queries += mw.res.Queries
		for _, m := range masters {
			res.Masters = append(res.Masters, *mw.masters[m.Name])
		}
		if err != nil {
			return endEarly(res, plan, 0, err)
		}
	}
	failures := 0
	for i, batch := range plan {
		opts.Observer.note(fmt.Sprintf("%s %s: batch %d of %d: %s", kind, opts.ID, i+1, len(plan), strings.Join(names(batch), " ")))
		bw := newWatch(rpc, &opts, kind, batch, nil)
		bw.batch = true
		bw.otherBatches = map[string]bool{}
		for _, m := range targets {
			if _, inBatch := bw.targets[m.Name]; !inBatch {
				bw.otherBatches[m.Name] = true
			}
		}
		bw.res.Started = started // one --timeout for the whole rollout
		for name, m := range synced {
			// The masters' commits tell stale runs; for this batch the
			// trigger is the CLI's and done, so they are not polled.
			c := *m
			c.Phase = protocol.PhaseTriggered
			bw.masters[name] = &c
		}
		bres, err := bw.finish(ctx, bw.fireRuns(ctx, serfrpc.Filter{Nodes: names(batch)}, len(targets)))
		res.Queries += bres.Queries
		res.Nodes = append(res.Nodes, bres.Nodes...)
		res.StatusSource = bres.StatusSource
		if err != nil {
			return endEarly(res, plan, i+1, err)
		}
		for _, n := range bres.Nodes {
			if n.State != StateFinished && n.State != StateSkipped {
				failures++
			}
		}
		if failures > budget && i+1 < len(plan) {
			why := fmt.Sprintf("not started: %d target(s) failed by batch %d of %d, over --max-failures %s", failures, i+1, len(plan), budgetText(opts))
			skipRest(res, plan[i+1:], why)
			opts.Observer.note(why)
			break
		}
	}
	res.Finished = time.Now()
	res.ExitCode = decideExit(res.Nodes)
	res.Outcome = outcome(res)
	return res, nil
}

func budgetText(opts Options) string {
	if opts.MaxFailures == "" {
		return "0 (the default with batches)"
	}
	return opts.MaxFailures
}

// endEarly ends a rollout that stopped before its last batch ended: the
// targets of the batches not started are skipped, and err decides the code.
func endEarly(res *Result, plan [][]serfrpc.Member, done int, err error) (*Result, error) {
	skipRest(res, plan[done:], "not started: the rollout stopped: "+protocol.OneLine(err.Error(), 300))
	res.Finished = time.Now()
	res.ExitCode = codeOf(err)
	res.Outcome, res.Error = err.Error(), err.Error()
	return res, err
}

func skipRest(res *Result, rest [][]serfrpc.Member, why string) {
	for _, batch := range rest {
		for _, m := range batch {
			res.Nodes = append(res.Nodes, NodeResult{Node: m.Name, State: StateSkipped,
				Outcome: protocol.Outcome{Reason: "not_started", Message: why}})
		}
	}
}

// syncOnly fires the deploy event (SyncOnly: the masters install the code
// and trigger nothing) and waits until every master has synced or is lost.
// It returns the masters, whose commits tell stale runs.
func (w *watch) syncOnly(ctx context.Context, event []byte) (map[string]*MasterResult, error) {
	deadline := w.res.Started.Add(w.opts.Timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	w.eventPayload, w.lastSent, w.res.Fired = event, time.Now(), true
	if err := w.rpc.FireEvent(ctx, protocol.EventDeploy, event, false); err != nil {
		return nil, interruptedOr(ctx, err, "firing the deploy event")
	}
	var ask []string
	for name := range w.masters {
		ask = append(ask, name)
	}
	sort.Strings(ask)
	for {
		if err := w.poll(ctx, ask); err != nil {
			return nil, interruptedOr(ctx, err, "waiting for the code sync")
		}
		synced, open := 0, 0
		for _, m := range w.masters {
			switch m.Phase {
			case protocol.PhaseSynced:
				synced++
			case StateLost:
			default:
				open++
			}
		}
		if open == 0 && synced > 0 {
			return w.masters, nil
		}
		if open == 0 {
			return nil, Errorf(ExitInfra, "every master was lost before the code sync finished")
		}
		if err := w.resend(ctx); err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			if time.Now().Before(deadline) {
				return nil, Errorf(ExitIncomplete, "interrupted while waiting for the code sync; nothing was run")
			}
			return nil, Errorf(ExitInfra, "the masters had not synced the code at the %s timeout; nothing was run", w.opts.Timeout)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// fireRuns sends puppetrun to the targets f names and watches them to the
// end; targets is how many the run (all batches of a rollout) has.
func (w *watch) fireRuns(ctx context.Context, f serfrpc.Filter, targets int) error {
	w.runPayload = runRequest(w.opts, targets)
	w.res.Fired = true
	_, err := w.query(ctx, serfrpc.Query{
		Name: protocol.QueryPuppetRun, Payload: w.runPayload, Filter: f,
		Timeout: w.opts.QueryTimeout, Expect: w.order, Resend: resendQuery, Patience: pollPatience,
		OnResponse: w.runAnswer,
	})
	if err != nil {
		return interruptedOr(ctx, err, "sending the run request")
	}
	w.triggeredAt, w.lastSent = time.Now(), time.Now()
	return w.loop(ctx)
}

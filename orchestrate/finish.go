package orchestrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// finish reads the final statuses from the logging service, builds the
// result and decides the exit code. loopErr is what ended the watch early,
// if anything; the result is returned with it, as far as it got.
func (w *watch) finish(ctx context.Context, loopErr error) (*Result, error) {
	res := w.res
	res.Finished = time.Now()
	for _, name := range w.order {
		res.Nodes = append(res.Nodes, *w.targets[name])
	}
	for _, m := range w.masters {
		res.Masters = append(res.Masters, *m)
	}
	if loopErr != nil {
		if res.Fired {
			loopErr = withReattach(loopErr, w.opts.ID)
		}
		res.ExitCode = codeOf(loopErr)
		res.Outcome, res.Error = loopErr.Error(), loopErr.Error()
		return res, loopErr
	}

	var logErr error
	if w.opts.Log == nil {
		res.StatusSource = "the nodes' puppet-status answers (no logging service configured)"
		w.observer.note("no logging service configured: final status comes from the nodes' puppet-status answers")
	} else {
		res.StatusSource = "the logging service"
		logErr = w.readLog(ctx)
	}
	applyPolicies(res.Nodes, w.opts)
	res.ExitCode = decideExit(res.Nodes)
	res.Outcome = outcome(res)
	if why := w.unaccounted(); res.ExitCode == ExitOK && why != "" {
		res.ExitCode = ExitIncomplete
		res.Outcome = fmt.Sprintf("%s; but %s (exit %d)",
			strings.TrimSuffix(res.Outcome, fmt.Sprintf(" (exit %d)", ExitOK)), why, ExitIncomplete)
	}
	if logErr != nil {
		logErr = withReattach(logErr, w.opts.ID)
		res.ExitCode = codeOf(logErr)
		res.Outcome, res.Error = logErr.Error(), logErr.Error()
		return res, logErr
	}
	return res, nil
}

// unaccounted says which nodes of the deploy the CLI cannot account for,
// or "" when it can: a deploy it cannot say all of succeeded is not exit 0.
func (w *watch) unaccounted() string {
	heard := len(w.heard)
	switch {
	case w.reached() > heard:
		// The trigger reached nodes the CLI never heard from.
		return fmt.Sprintf("the masters' trigger reached %d node(s) and only %d answered for this deploy", w.reached(), heard)
	case w.listed() > heard:
		// The trigger was sent to an alive target that never answered
		// (one the gossip missed never ran).
		return fmt.Sprintf("the masters' trigger was sent to %d node(s) and only %d answered for this deploy", w.listed(), heard)
	case len(w.silent) > 0:
		return fmt.Sprintf("%d master(s) never answered whether they have a record of it (%s)", len(w.silent), someNames(w.silent))
	case !w.batch && w.expected() > len(w.targets):
		// A re-attached watch knows the targets only from their records:
		// one that left before the trigger, or a batch the aborted
		// rollout never started, has none.
		return fmt.Sprintf("the deploy listed %d target(s) and only %d have a record of it; the others never ran it (see `serfdeploy status --id %s`)", w.expected(), len(w.targets), w.opts.ID)
	}
	return ""
}

// readLog replaces each node's polled status with its finished record from
// the logging service, waiting a little for records still on their way.
func (w *watch) readLog(ctx context.Context) error {
	res := w.res
	want := map[int]bool{}
	for i, n := range res.Nodes {
		if n.ExitCode != nil || n.State == StateFinished || n.State == StateFailed {
			want[i] = true
		}
	}
	if len(want) == 0 {
		return nil
	}
	deadline := time.Now().Add(w.opts.LogWait)
	var records map[string]protocol.RunRecord
	for {
		var err error
		records, err = w.opts.Log.Latest(ctx, res.ID, res.Started.Add(-5*time.Minute), time.Now().Add(time.Minute))
		if err != nil && ctx.Err() != nil {
			// A Jenkins abort while the read is on the wire: the read fails
			// because of the interrupt, which is exit 4, not the service.
			return &Error{Code: ExitIncomplete, Err: fmt.Errorf("interrupted while reading the logging service: %w", ctx.Err())}
		}
		if err != nil {
			return &Error{Code: ExitInfra, Err: fmt.Errorf("reading the final status from the logging service: %w", err)}
		}
		if haveAll(res.Nodes, want, records) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return &Error{Code: ExitIncomplete, Err: fmt.Errorf("interrupted while reading the logging service: %w", ctx.Err())}
		case <-time.After(time.Second):
		}
	}
	for i := range want {
		n := &res.Nodes[i]
		rec, ok := records[n.Node]
		if ok && recordRequest(rec).Conflicts(w.request()) {
			ok = false // a record of another request under the same id
		}
		if !ok || rec.Event != "finished" {
			n.LogMissing = true
			w.observer.note(fmt.Sprintf("%s finished, but the logging service has no finished record for it", n.Node))
			continue
		}
		w.applyFinal(n, rec)
	}
	return nil
}

// recordRequest is what a log record's run was for.
func recordRequest(rec protocol.RunRecord) protocol.Request {
	return protocol.Request{Module: rec.Module, Ref: rec.Ref, Environment: rec.Environment}
}

func haveAll(nodes []NodeResult, want map[int]bool, records map[string]protocol.RunRecord) bool {
	for i := range want {
		if rec, ok := records[nodes[i].Node]; !ok || rec.Event != "finished" {
			return false
		}
	}
	return true
}

// applyRecord takes the logging service's record as the final word.
func applyRecord(n *NodeResult, rec protocol.RunRecord) {
	if s := stateOf(rec.Phase); Final(s) {
		n.State = s
	}
	n.Outcome = rec.Outcome
	n.Source = "log"
}

// outcome says in one line how it ended.
func outcome(res *Result) string {
	c := res.Counts()
	var parts []string
	// Every state a node can end in is named: a count that leaves one out
	// (stale runs were) reads as if those nodes were fine.
	for _, s := range []string{StateFinished, StateFailed, StateStale, StateBusy, StateDisabled, StateLost, StateTimeout,
		StateMissed, StateInterrupted, StateWaiting, StatePending, StateRunning, StateSkipped} {
		if c[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c[s], s))
		}
	}
	what := map[int]string{
		ExitOK:         "every target finished without failures",
		ExitFailed:     "a puppet run failed or did not happen",
		ExitIncomplete: "not every target finished",
		ExitPending:    "changes pending (noop: nothing was changed)",
	}[res.ExitCode]
	if res.ExitCode == ExitOK && c[StateFinished] == 0 && c[StateSkipped] > 0 {
		what = "no target ran: every one was skipped"
	}
	if p := pendingNodes(res.Nodes); p > 0 {
		parts = append(parts, fmt.Sprintf("%d with pending changes", p))
	}
	return fmt.Sprintf("%s: %s (exit %d)", strings.Join(parts, ", "), what, res.ExitCode)
}

func pendingNodes(nodes []NodeResult) int {
	n := 0
	for _, node := range nodes {
		if node.State == StateFinished && node.Pending > 0 {
			n++
		}
	}
	return n
}

// codeOf returns the exit code an error stands for.
func codeOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ExitInfra
}

// someNames lists the first few names, for a one-line message.
func someNames(names []string) string {
	const most = 5
	if len(names) <= most {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:most], ", "), len(names)-most)
}

// withReattach adds the `serfdeploy watch ID` line to an error that ended a
// watch after the runs were sent: the runs do not depend on this CLI or its
// agent, so the user must learn how to pick them up. An interrupt that lands
// while the run request is still being sent is such a case too: a node may
// already have taken the run (a CI flake in TestWatchReattaches was exactly
// that: exit 4 with no watch line).
func withReattach(err error, id string) error {
	if strings.Contains(err.Error(), "serfdeploy watch ") {
		return err
	}
	switch {
	case errors.Is(err, serfrpc.ErrGone):
		return Errorf(ExitInfra, "%w; the runs go on: re-attach with `serfdeploy watch %s`", err, id)
	case codeOf(err) == ExitIncomplete:
		return Errorf(ExitIncomplete, "%w; the runs do not depend on this CLI: re-attach with `serfdeploy watch %s`", err, id)
	}
	return err
}

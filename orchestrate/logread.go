package orchestrate

import (
	"context"
	"fmt"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// logCheckEvery paces reading the logging service for runs the polls have
// not seen finish (a node whose answers are lost, e.g. too large for serf).
const logCheckEvery = 10 * time.Second

// settleFromLog feeds the state the logging service's records while
// targets are unfinished: a finished record there settles a target the
// polls still see running.
func (w *watch) settleFromLog(ctx context.Context, force bool) {
	if w.opts.Log == nil || (!force && time.Since(w.lastLogCheck) < logCheckEvery) || len(w.s.sent) == 0 || w.s.settled() {
		return
	}
	w.lastLogCheck = time.Now()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	records, err := w.latest(ctx)
	if err != nil {
		w.observer.note(fmt.Sprintf("reading the logging service for unfinished nodes: %v", err))
		return
	}
	w.s.apply(logRecords{At: time.Now(), Records: records})
}

// readFinal reads the final status of each target of the batch under way
// that ran to an end, waiting up to LogWait for records still on their
// way, and feeds them to the state.
func (w *watch) readFinal(ctx context.Context) error {
	if w.opts.Log == nil {
		if !w.s.logRead {
			w.observer.note("no logging service configured: final status comes from the nodes' puppet-status answers")
		}
		return nil
	}
	var want []string
	for _, name := range w.s.order {
		if w.s.active(name) && wantsFinalRecord(w.s.targets[name]) {
			want = append(want, name)
		}
	}
	deadline := time.Now().Add(w.opts.LogWait)
	var records map[string]protocol.RunRecord
	for {
		var err error
		records, err = w.latest(ctx)
		if err != nil && ctx.Err() == nil {
			err = fmt.Errorf("reading the final status from the logging service: %w", err)
		}
		if err != nil {
			return &during{doing: "reading the logging service", err: err}
		}
		if haveAll(want, records) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return &during{doing: "reading the logging service", err: ctx.Err()}
		case <-time.After(time.Second):
		}
	}
	w.s.apply(logRecords{At: time.Now(), Records: records, Final: true})
	return nil
}

// latest reads the newest record of each node for this deploy.
func (w *watch) latest(ctx context.Context) (map[string]protocol.RunRecord, error) {
	return w.opts.Log.Latest(ctx, w.opts.ID, w.res.Started.Add(-5*time.Minute), time.Now().Add(time.Minute))
}

func haveAll(want []string, records map[string]protocol.RunRecord) bool {
	for _, name := range want {
		if rec, ok := records[name]; !ok || rec.Event != protocol.LogFinished {
			return false
		}
	}
	return true
}

// recordRequest is what a log record's run was for.
func recordRequest(rec protocol.RunRecord) protocol.Request {
	return protocol.Request{Module: rec.Module, Ref: rec.Ref, Environment: rec.Environment}
}

// applyRecord takes the logging service's record as the final word.
func applyRecord(n *NodeResult, rec protocol.RunRecord) {
	if s := stateOf(rec.Phase); Final(s) {
		n.State = s
	}
	n.Outcome = rec.Outcome
	n.Source = "log"
}

package orchestrate

import (
	"context"
	"errors"
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

// batched reports whether the CLI sends the runs itself, in batches or a
// --concurrency window, after the masters only installed the code.
func (o *Options) batched() bool { return o.Batch != "" || o.Canary > 0 || o.Concurrency > 0 }

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
			return Errorf(ExitUsage, "--max-failures is a budget between batches: give --batch, --canary or --concurrency too")
		}
		if _, err := parseCount(o.MaxFailures, 100); err != nil {
			return Errorf(ExitUsage, "--max-failures %q: %w", o.MaxFailures, err)
		}
	}
	if o.Canary < 0 {
		return Errorf(ExitUsage, "--canary must be positive (got %d)", o.Canary)
	}
	switch {
	case o.Concurrency < 0:
		return Errorf(ExitUsage, "--concurrency must be positive (got %d)", o.Concurrency)
	case o.Concurrency > 0 && (o.Batch != "" || o.Canary > 0):
		return Errorf(ExitUsage, "--concurrency keeps N runs going and --batch/--canary wait for whole batches: choose one")
	case o.BatchSleep < 0:
		return Errorf(ExitUsage, "--batch-sleep must be positive (got %s)", o.BatchSleep)
	case o.BatchSleep > 0 && o.Batch == "" && o.Canary == 0:
		return Errorf(ExitUsage, "--batch-sleep is a pause between batches: give --batch or --canary too")
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

// batchLine is the note that starts a batch of a rollout, or the next
// targets of a --concurrency window.
func batchLine(s *deployState, batch []string) string {
	if s.window > 0 {
		return fmt.Sprintf("%s %s: starting %s (%d at a time, %d not started yet)", s.kind, s.opts.ID, strings.Join(batch, " "), s.window, len(s.unsent())-len(batch))
	}
	return fmt.Sprintf("%s %s: batch %d of %d: %s", s.kind, s.opts.ID, s.current+1, len(s.plan), strings.Join(batch, " "))
}

func budgetText(opts Options) string {
	if opts.MaxFailures == "" {
		return "0 (the default with batches)"
	}
	return opts.MaxFailures
}

// syncOnly fires the deploy event of a rollout (SyncOnly: the masters
// install the code and trigger nothing) and waits until every master has
// synced or is lost; the CLI then sends the runs batch by batch.
func (w *watch) syncOnly(ctx context.Context) error {
	w.s.apply(fired{At: time.Now()})
	w.lastSent = time.Now()
	if err := w.rpc.FireEvent(ctx, protocol.EventDeploy, w.eventPayload, false); err != nil {
		return &during{doing: "firing the deploy event", err: err}
	}
	masters := sortedKeys(w.s.masters)
	for w.s.end == nil {
		if err := w.poll(ctx, masters); err != nil {
			return &during{doing: "waiting for the code sync", err: err}
		}
		done, synced := w.s.syncDone()
		if done && synced > 0 {
			return nil
		}
		if done {
			return Errorf(ExitInfra, "every master was lost or failed before the code sync finished")
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return Errorf(ExitInfra, "the masters had not synced the code at the %s timeout; nothing was run", w.opts.Timeout)
			}
			return &during{doing: "waiting for the code sync", err: ctx.Err()}
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil
}

// batchDone: the batch's final statuses are read. The rollout starts the
// next batch, unless more targets failed than --max-failures allows.
func (s *deployState) batchDone(at time.Time) {
	if s.window > 0 {
		s.checkBudget(at, fmt.Sprintf("not started: %d target(s) failed, over --max-failures %s", s.failed(), budgetText(*s.opts)))
		return
	}
	if s.current+1 >= len(s.plan) {
		return
	}
	if s.checkBudget(at, fmt.Sprintf("not started: %d target(s) failed by batch %d of %d, over --max-failures %s", s.failed(), s.current+1, len(s.plan), budgetText(*s.opts))) {
		return
	}
	s.current++ // sent by the driver (runSent)
}

// checkBudget stops the rollout, with why, once more targets failed than
// --max-failures allows and some were not started.
func (s *deployState) checkBudget(at time.Time, why string) bool {
	if s.stopped || len(s.unsent()) == 0 || s.failed() <= s.budget() {
		return false
	}
	s.observer.note(why)
	s.stopRollout(at, why)
	return true
}

// nextBatch returns the targets to send the run request to now: the
// batch under way if it was not sent yet, or with --concurrency, as many
// not started as the window has room for. None once the rollout stopped.
func (s *deployState) nextBatch() ([]string, bool) {
	if s.stopped || s.end != nil {
		return nil, false
	}
	if s.window > 0 {
		unsent := s.unsent()
		room := min(s.window-s.unfinished(), len(unsent))
		return unsent[:max(room, 0)], room > 0
	}
	if s.current >= len(s.plan) || len(s.plan[s.current]) == 0 || s.sent[s.plan[s.current][0]] {
		return nil, false
	}
	return s.plan[s.current], true
}

// budget is how many targets may fail before no further run starts.
func (s *deployState) budget() int {
	if s.opts.MaxFailures == "" {
		return 0 // a rollout stops at the first failure unless told otherwise
	}
	n, _ := parseCount(s.opts.MaxFailures, len(s.batchOf))
	return n
}

// stopRollout skips, with why, every listed target the run request has
// not gone to.
func (s *deployState) stopRollout(at time.Time, why string) {
	if s.stopped {
		return
	}
	s.stopped = true
	for _, name := range s.unsent() {
		t := s.targets[name]
		t.State, t.Reason, t.Message = StateSkipped, "not_started", why
		t.Changes = append(t.Changes, Change{At: at, State: StateSkipped})
	}
}

package orchestrate

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// deployState is everything the CLI knows of one deploy, run or watch: its
// targets and masters and what each has said. It changes only through
// apply, one input at a time (inputs.go), and verdict (verdict.go) says how
// it ended. It sends nothing, reads no clock and starts no goroutine: each
// input carries its own time, so a test can play any sequence of answers,
// member changes, log records, ticks and interrupts without serf. The
// driver (watch.go) polls serf and the logging service and feeds it.
type deployState struct {
	opts     *Options
	kind     string // "deploy" or "run"
	observer Observer

	targets map[string]*NodeResult
	masters map[string]*MasterResult
	order   []string // targets in the order they were listed or found

	// plan is the batches of a rollout (--batch, --canary) by name; one
	// batch of every target without, and with --concurrency, whose window
	// keeps that many runs going. batchOf places each listed target;
	// current is the batch under way or next to send.
	plan    [][]string
	batchOf map[string]int
	current int
	window  int
	// sent: the targets the run request went to (all of them at once for a
	// deploy whose masters trigger the runs), and when (sentAt, the CLI's
	// own sends only). Only sent targets are watched; a rollout that stops
	// skips the others.
	sent    map[string]bool
	sentAt  map[string]time.Time
	stopped bool

	// triggeredAt is zero until a master has fired puppetrun, or the CLI
	// sent the run request itself (runSent).
	triggeredAt time.Time
	runSent     bool
	// fired: the deploy event or a run request went out: from then on a
	// retry may run twice. underway: fired, or a watch re-attached to runs
	// already made; an early end then names `serfdeploy watch ID`.
	fired, underway bool

	// heard holds the targets that answered with a record of this request:
	// the CLI can account for them. A master's trigger that reached more
	// nodes than these is never an exit 0.
	heard map[string]bool
	// garbled counts each node's unreadable answers in a row.
	garbled map[string]int
	// leftAt: when a target was first seen left (mayReturn).
	leftAt map[string]time.Time
	// answeredAt: when a node last answered a status query (unlisted).
	answeredAt map[string]time.Time
	// runTargets: how many targets the CLI that fired the run listed, as
	// the targets' records say (RunRequest.Targets).
	runTargets int
	// silent: masters a re-attached watch asked for their record of the
	// id that never answered: it cannot check the deploy's target count.
	silent []string

	// end is what ended the deploy before its nodes decided it (a failed
	// code sync, a reused id, serf gone, an interrupt); it decides the
	// exit code.
	end error
	// logRead: the final statuses came from the logging service.
	logRead bool
}

// A node whose answers cannot be read this many times in a row is given up.
const maxGarbled = 3

// newDeployState starts the state of a deploy or run of targets through
// masters (none for a run). With a rollout (opts.batched), the targets are
// split into batches and only the first is under way until the driver
// moves on (nextBatch).
func newDeployState(opts *Options, kind string, targets, masters []serfrpc.Member) *deployState {
	s := &deployState{
		opts: opts, kind: kind, observer: opts.Observer,
		targets: map[string]*NodeResult{}, masters: map[string]*MasterResult{},
		batchOf: map[string]int{}, window: opts.Concurrency, sent: map[string]bool{}, sentAt: map[string]time.Time{},
		heard: map[string]bool{}, garbled: map[string]int{}, leftAt: map[string]time.Time{}, answeredAt: map[string]time.Time{},
	}
	for _, m := range masters {
		s.masters[m.Name] = &MasterResult{Node: m.Name, Phase: protocol.PhaseUnknown}
	}
	plan := [][]serfrpc.Member{targets}
	if opts.Batch != "" || opts.Canary > 0 {
		plan = batches(targets, opts)
	}
	for i, batch := range plan {
		s.plan = append(s.plan, names(batch))
		for _, t := range batch {
			s.batchOf[t.Name] = i
			s.targets[t.Name] = &NodeResult{Node: t.Name, State: StateWaiting}
			if len(plan) > 1 {
				s.targets[t.Name].Batch = i + 1
			}
			s.order = append(s.order, t.Name)
		}
	}
	return s
}

// request is what this deploy asked for, as the nodes' records name it.
func (s *deployState) request() protocol.Request { return s.opts.request() }

// active reports whether a target is watched: its run was requested, or
// it was not listed and joined (the trigger reached it).
func (s *deployState) active(name string) bool {
	_, listed := s.batchOf[name]
	return !listed || s.sent[name]
}

// failed counts the targets whose run was requested and ended otherwise
// than finished or skipped (after the user's policies): what --max-failures
// is measured against.
func (s *deployState) failed() int {
	n := 0
	for name, t := range s.targets {
		if state := s.effective(t); s.active(name) && Final(t.State) && state != StateFinished && state != StateSkipped {
			n++
		}
	}
	return n
}

// unsent lists, in order, the listed targets the run request has not gone to.
func (s *deployState) unsent() []string {
	var out []string
	for _, batch := range s.plan {
		for _, name := range batch {
			if !s.sent[name] {
				out = append(out, name)
			}
		}
	}
	return out
}

// pending lists the nodes still to be asked: masters not done with the
// code sync, and the targets of the batch under way that are not final.
// Until a master has fired puppetrun no run can have started: only the
// masters are asked, so that the trigger is seen at once.
func (s *deployState) pending() []string {
	var out []string
	for _, name := range sortedKeys(s.masters) {
		if _, isTarget := s.targets[name]; !isTarget && !s.masters[name].done() {
			out = append(out, name)
		}
	}
	syncing := len(s.masters) > 0 && s.triggeredAt.IsZero()
	for _, name := range s.order {
		if _, isMaster := s.masters[name]; syncing && !isMaster {
			continue
		}
		if !Final(s.targets[name].State) && (s.active(name) || syncing) {
			out = append(out, name)
		}
	}
	return sortedStrings(out)
}

// settled reports whether every target whose run was requested is final.
func (s *deployState) settled() bool { return s.unfinished() == 0 }

func (s *deployState) unfinished() int {
	n := 0
	for name, t := range s.targets {
		if s.active(name) && !Final(t.State) {
			n++
		}
	}
	return n
}

// syncDone reports whether the masters are done with the code sync of a
// rollout (SyncOnly): synced is how many installed it.
func (s *deployState) syncDone() (done bool, synced int) {
	open := 0
	for _, m := range s.masters {
		switch m.Phase {
		case protocol.PhaseSynced, protocol.PhaseTriggered:
			synced++
		case StateLost, protocol.PhaseFailed:
		default:
			open++
		}
	}
	return open == 0, synced
}

// reached is the most nodes any master's trigger reached; listed, the
// most alive targets any master's trigger was sent to; expected, how many
// targets the CLI listed, as the masters (a deploy) or the targets (a
// run) recorded it; 0 from nodes older than that field.
func (s *deployState) reached() int {
	return s.mostOfMasters(func(m *MasterResult) int { return m.Reached })
}
func (s *deployState) listed() int {
	return s.mostOfMasters(func(m *MasterResult) int { return m.Listed })
}
func (s *deployState) expected() int {
	return max(s.runTargets, s.mostOfMasters(func(m *MasterResult) int { return m.Targets }))
}

func (s *deployState) mostOfMasters(figure func(*MasterResult) int) int {
	n := 0
	for _, m := range s.masters {
		n = max(n, figure(m))
	}
	return n
}

// progress counts the targets under way by stage, for a spinner.
func (s *deployState) progress() Progress {
	p := Progress{Total: len(s.targets)}
	for _, t := range s.targets {
		switch {
		case Final(t.State):
			p.Done++
		case t.State == StateRunning || t.State == StatePending:
			p.Running++
		default:
			p.Waiting++
		}
	}
	return p
}

// set changes a target's state, reporting real changes only.
func (s *deployState) set(at time.Time, t *NodeResult, state, reason, message string) {
	if t.State == state && t.Message == message {
		return
	}
	if t.State != state {
		t.Changes = append(t.Changes, Change{At: at, State: state})
	}
	t.State, t.Reason, t.Message = state, reason, message
	detail := message
	if t.State == StateFinished || t.State == StateFailed {
		detail = fmt.Sprintf("changed %d, failed %d, total %d, %.1fs", t.Changed, t.Failed, t.Total, t.DurationSec)
		if message != "" {
			detail += ": " + message
		}
	}
	s.observer.event(Event{Time: at, Node: t.Node, State: state, Detail: detail})
}

// staleDetail says why a run that finished applied other code than this
// deploy's, or "" when it did not (or it cannot be told: the environment
// has no config_version of serfdeploy's).
func (s *deployState) staleDetail(applied string) string {
	if s.opts.ExpectVersion != "" {
		return versionMismatch(applied, s.opts.ExpectVersion)
	}
	if s.opts.Module == "" || applied == "" {
		return ""
	}
	got, ok := protocol.ParseCodeVersion(applied)[s.opts.Module]
	if !ok {
		return ""
	}
	want := ""
	for _, name := range sortedKeys(s.masters) {
		if c := s.masters[name].Commit; c != "" {
			want = c
		}
	}
	if want == "" || sameCommit(got, want) {
		return ""
	}
	return fmt.Sprintf("applied %s at %s, not this deploy's %s: another deploy of the module replaced it", s.opts.Module, short(got), short(want))
}

// applyFinal takes a finished record from the logging service as t's
// result, stale when it applied other code than this deploy's.
func (s *deployState) applyFinal(t *NodeResult, rec protocol.RunRecord) {
	applyRecord(t, rec)
	if t.State == StateFinished {
		if stale := s.staleDetail(t.ConfigVersion); stale != "" {
			t.State, t.Reason, t.Message = StateStale, "stale", stale
		}
	}
}

// stateOf maps a node's phase to the watcher's state: the same word for a
// run under way or ended; any other (unknown, or a master's sync phase)
// says the node has not taken the run yet.
func stateOf(phase string) string {
	if phase == protocol.PhasePending || phase == protocol.PhaseRunning || protocol.Done(phase) {
		return phase
	}
	return StateWaiting
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func sortedStrings(s []string) []string {
	slices.Sort(s)
	return s
}

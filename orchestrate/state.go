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
	// batch of every target without. batchOf places each listed target;
	// current is the batch under way, started whether its runs were sent.
	plan     [][]string
	batchOf  map[string]int
	current  int
	started  bool
	failures int // targets of finished batches that did not finish fine
	// stoppedAt: the batch after which the rollout stopped starting
	// batches; -1 while it goes on.
	stoppedAt int

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
		batchOf: map[string]int{}, stoppedAt: -1,
		heard: map[string]bool{}, garbled: map[string]int{}, leftAt: map[string]time.Time{}, answeredAt: map[string]time.Time{},
	}
	for _, m := range masters {
		s.masters[m.Name] = &MasterResult{Node: m.Name, Phase: protocol.PhaseUnknown}
	}
	plan := [][]serfrpc.Member{targets}
	if opts.batched() {
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

// inBatch reports whether a target belongs to the batch under way (a late
// joiner belongs to the batch it joined in).
func (s *deployState) inBatch(name string) bool {
	b, ok := s.batchOf[name]
	return !ok || b == s.current
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
		if !Final(s.targets[name].State) && s.inBatch(name) && (s.started || syncing) {
			out = append(out, name)
		}
	}
	return sortedStrings(out)
}

// settled reports whether every target of the batch under way is final.
func (s *deployState) settled() bool { return s.unfinished() == 0 }

func (s *deployState) unfinished() int {
	n := 0
	for name, t := range s.targets {
		if s.inBatch(name) && !Final(t.State) {
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

// stateOf maps a node's phase to the watcher's state.
func stateOf(phase string) string {
	switch phase {
	case protocol.PhasePending:
		return StatePending
	case protocol.PhaseRunning:
		return StateRunning
	case protocol.PhaseFinished:
		return StateFinished
	case protocol.PhaseFailed:
		return StateFailed
	case protocol.PhaseBusy:
		return StateBusy
	case protocol.PhaseDisabled:
		return StateDisabled
	case protocol.PhaseSkipped:
		return StateSkipped
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

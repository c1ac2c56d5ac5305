package orchestrate

import (
	"fmt"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// An input is one thing the driver saw, applied to a deployState in the
// order seen. Each carries the time it was seen: the state reads no clock.
type input interface{ seenAt() time.Time }

type (
	// fired: the deploy event went out (a deploy), or a watch re-attached
	// (Reattached: nothing was sent, but runs may be under way).
	fired struct {
		At         time.Time
		Reattached bool
	}
	// runSent: the CLI sent the run request to Nodes (a run, a rollout's
	// batch, or the next ones of a --concurrency window).
	runSent struct {
		At    time.Time
		Nodes []string
	}
	// statusAnswer: a node's answer to puppet-status.
	statusAnswer struct {
		At      time.Time
		From    string
		Payload []byte
	}
	// runAnswer: a target's answer to the CLI's puppetrun query.
	runAnswer struct {
		At      time.Time
		From    string
		Payload []byte
	}
	// memberSeen: serf's status of a node the driver asked about ("" when
	// the CLI's agent does not list it).
	memberSeen struct {
		At         time.Time
		Node, Serf string
	}
	// logRecords: the logging service's latest record of each node. Final
	// is the read at the end of a batch: each node that finished takes its
	// record as the final word, and one without is marked LogMissing.
	// Otherwise only nodes the polls still see unfinished take one.
	logRecords struct {
		At      time.Time
		Records map[string]protocol.RunRecord
		Final   bool
	}
	// tick: time passes; targets that never heard of the run are missed.
	tick struct{ At time.Time }
	// deadline: --timeout passed; what is unfinished timed out.
	deadline struct{ At time.Time }
	// interrupt: SIGINT or SIGTERM (a Jenkins abort); Doing says what the
	// CLI was doing, for the message.
	interrupt struct {
		At    time.Time
		Doing string
	}
	// failure: the driver could not go on (serf's agent gone, the logging
	// service unreadable at the end); Err carries the exit code.
	failure struct {
		At  time.Time
		Err error
	}
	// batchDone: the driver read the batch's final statuses; the rollout
	// counts its failures and starts the next batch or stops.
	batchDone struct{ At time.Time }
)

func (i fired) seenAt() time.Time        { return i.At }
func (i runSent) seenAt() time.Time      { return i.At }
func (i statusAnswer) seenAt() time.Time { return i.At }
func (i runAnswer) seenAt() time.Time    { return i.At }
func (i memberSeen) seenAt() time.Time   { return i.At }
func (i logRecords) seenAt() time.Time   { return i.At }
func (i tick) seenAt() time.Time         { return i.At }
func (i deadline) seenAt() time.Time     { return i.At }
func (i interrupt) seenAt() time.Time    { return i.At }
func (i failure) seenAt() time.Time      { return i.At }
func (i batchDone) seenAt() time.Time    { return i.At }

// apply changes the state by one input. Once the deploy has ended early
// (s.end), nothing changes it any more.
func (s *deployState) apply(in input) {
	if s.end != nil {
		return
	}
	at := in.seenAt()
	switch in := in.(type) {
	case fired:
		s.underway = true
		s.fired = s.fired || !in.Reattached
		if !s.opts.batched() || in.Reattached {
			// The masters' trigger sends the run to every target; a
			// re-attached watch follows every run it found.
			for name := range s.batchOf {
				s.sent[name] = true
			}
		}
		if in.Reattached && len(s.masters) == 0 {
			s.triggeredAt = at
		}
	case runSent:
		s.fired, s.underway, s.runSent = true, true, true
		for _, name := range in.Nodes {
			s.sent[name], s.sentAt[name] = true, at
		}
		if s.triggeredAt.IsZero() {
			s.triggeredAt = at
		}
	case statusAnswer:
		s.statusAnswer(in)
	case runAnswer:
		s.runAnswer(in)
	case memberSeen:
		s.memberSeen(in)
	case logRecords:
		s.logRecords(in)
	case tick:
		s.checkMissed(at)
		if s.window > 0 {
			s.checkBudget(at, fmt.Sprintf("not started: %d target(s) failed, over --max-failures %s", s.failed(), budgetText(*s.opts)))
		}
	case deadline:
		s.giveUp(at, StateTimeout, fmt.Sprintf("still unfinished at the %s timeout", s.opts.Timeout))
		s.stopRollout(at, fmt.Sprintf("not started: the %s timeout passed", s.opts.Timeout))
	case interrupt:
		s.interrupt(in)
	case failure:
		s.stop(at, in.Err)
	case batchDone:
		s.batchDone(at)
	}
}

// interrupt ends the deploy at SIGINT or SIGTERM: exit 4, and once
// anything was sent, the line that says how to pick the runs up again.
func (s *deployState) interrupt(in interrupt) {
	n := s.unfinished()
	switch {
	case !s.underway:
		s.stop(in.At, Errorf(ExitIncomplete, "interrupted while %s; nothing was sent", in.Doing))
	case len(s.sent) == 0:
		s.stop(in.At, Errorf(ExitIncomplete, "interrupted while %s; no run was started by this CLI", in.Doing))
	case n == 0:
		s.stop(in.At, Errorf(ExitIncomplete, "interrupted while %s", in.Doing))
	default:
		s.giveUp(in.At, StateInterrupted, "the CLI stopped watching before it finished; the run goes on")
		s.stop(in.At, Errorf(ExitIncomplete, "interrupted while %s: %d node(s) had not finished; their runs go on: re-attach with `serfdeploy watch %s` (or look with `serfdeploy status --id %s`)",
			in.Doing, n, s.opts.ID, s.opts.ID))
	}
}

// stop ends the deploy early with err: the batches not started are
// skipped, and err decides the exit code.
func (s *deployState) stop(at time.Time, err error) {
	if s.underway {
		err = withReattach(err, s.opts.ID)
	}
	s.stopRollout(at, "not started: the rollout stopped: "+protocol.OneLine(err.Error(), 300))
	s.end = err
}

// memberSeen applies serf's status of a node the driver asked about.
func (s *deployState) memberSeen(in memberSeen) {
	if in.Serf == serfrpc.StatusAlive || in.Serf == "" && s.unlisted(in.Node, in.At) {
		delete(s.leftAt, in.Node)
		return
	}
	if s.mayReturn(in.Node, in.Serf, in.At) {
		return
	}
	serf := in.Serf
	if serf == "" {
		serf = "gone (reaped)"
	}
	if t, ok := s.targets[in.Node]; ok && !Final(t.State) {
		s.set(in.At, t, StateLost, "", lostDetail(serf, s.opts.LeaveGrace))
	}
	if m, ok := s.masters[in.Node]; ok && !m.done() {
		m.Phase = StateLost
		s.observer.event(Event{Time: in.At, Node: in.Node, State: StateLost, Detail: "master " + serf + " during code sync", Master: true})
		if done, synced := s.syncDone(); s.triggeredAt.IsZero() && done && synced == 0 {
			s.stop(in.At, Errorf(ExitInfra, "every master was lost before the code sync finished (last: %s, %s)", in.Node, serf))
		}
	}
}

// isAlive reports whether the driver should ask a node it polled: serf
// lists it alive, or it answered lately though the CLI's agent does not
// list it yet.
func (s *deployState) isAlive(node, serf string, at time.Time) bool {
	return serf == serfrpc.StatusAlive || serf == "" && s.unlisted(node, at)
}

// unlistedGrace: how long a node that answered is taken as alive although
// the CLI's agent does not list it.
const unlistedGrace = 30 * time.Second

// unlisted reports whether a node the CLI's agent does not list answered
// within unlistedGrace: one that joined just before the trigger answers
// before the gossip of its join reaches the CLI's agent, and is not gone.
// Before, it was reported lost at the next poll (the oracle's wrong code,
// seed 6 scenario 1).
func (s *deployState) unlisted(name string, at time.Time) bool {
	t, ok := s.answeredAt[name]
	return ok && at.Sub(t) < unlistedGrace
}

// mayReturn reports whether a target serf lists as left or leaving is
// still within Options.LeaveGrace of when it was first seen so.
func (s *deployState) mayReturn(name, serfStatus string, at time.Time) bool {
	if serfStatus != serfrpc.StatusLeft && serfStatus != serfrpc.StatusLeaving {
		return false
	}
	if t, ok := s.targets[name]; !ok || Final(t.State) {
		return false
	}
	since, seen := s.leftAt[name]
	if !seen {
		s.leftAt[name] = at
		s.observer.event(Event{Time: at, Node: name, State: serfStatus,
			Detail: fmt.Sprintf("its serf agent left; its run may go on: waiting %s for it to come back", s.opts.LeaveGrace)})
		return true
	}
	return at.Sub(since) < s.opts.LeaveGrace
}

// noAnswerHint: a node that answered no query at all most often runs no
// serfdeploy handler.
const noAnswerHint = "it never answered a puppet-status query: is `serfdeploy handle` its serf event handler? (`serf info` on it lists the handlers)"

// lostDetail says, in the user's words, what serf's status of a node that
// went away means: a graceful leave is not a failure.
func lostDetail(serfStatus string, grace time.Duration) string {
	switch serfStatus {
	case serfrpc.StatusLeft, serfrpc.StatusLeaving:
		return fmt.Sprintf("its serf agent left the cluster (serf leave, a shutdown) before its run finished and was not back within %s; the run may have ended: see `serfdeploy status` once it is back", grace)
	case serfrpc.StatusFailed:
		return "serf's failure detection reports the node unreachable (failed) before its run finished"
	}
	return "serf reports the node " + serfStatus + " before its run finished"
}

// statusAnswer applies one puppet-status answer.
func (s *deployState) statusAnswer(in statusAnswer) {
	at, from := in.At, in.From
	var st protocol.Status
	if err := protocol.DecodeAnswerFrom(in.Payload, from, &st); err != nil {
		s.garbledAnswer(in)
		return
	}
	s.garbled[from] = 0
	s.answeredAt[from] = at
	if m, ok := s.masters[from]; ok && st.HasSync() {
		if err := s.syncAnswer(at, m, &st); err != nil {
			s.stop(at, err)
			return
		}
	}
	if !st.HasRun() {
		if t, ok := s.targets[from]; ok && t.State == StatePending {
			// Its record is gone: the handler that took the request was
			// stopped before a worker did, and the node gave the record
			// up. It is waiting again, so that the request is sent again.
			s.set(at, t, StateWaiting, "", st.Message)
		}
		return
	}
	if st.Request.Conflicts(s.request()) {
		s.observer.event(Event{Time: at, Node: from, State: "conflict",
			Detail: fmt.Sprintf("its record of %s is for a %s, not this %s; not counted", s.opts.ID, st.Request, s.request())})
		return
	}
	t, ok := s.targets[from]
	if !ok && st.Phase == protocol.PhaseSkipped {
		return // a master that was not a target
	}
	if !ok {
		t = s.joined(at, from)
	}
	s.heard[from] = true
	s.runTargets = max(s.runTargets, st.Targets)
	if Final(t.State) {
		return
	}
	state := stateOf(st.Phase)
	if state == StateWaiting {
		return
	}
	t.ExitCode, t.Changed, t.Failed, t.Total, t.DurationSec, t.Pending = st.Exit, st.Changed, st.Failed, st.Total, st.Duration, st.Pending
	t.ConfigVersion = st.Applied
	t.Source = "status"
	reason, message := st.Reason, st.Message
	if state == StateFinished {
		if stale := s.staleDetail(st.Applied); stale != "" {
			state, reason, message = StateStale, "stale", stale
		}
	}
	s.set(at, t, state, reason, message)
}

// garbledAnswer counts an answer that cannot be read: a target that
// answers so maxGarbled times in a row is given up.
func (s *deployState) garbledAnswer(in statusAnswer) {
	s.garbled[in.From]++
	detail := fmt.Sprintf("unreadable puppet-status answer: %q", protocol.Truncate(string(in.Payload), 120))
	if t, ok := s.targets[in.From]; ok && s.garbled[in.From] >= maxGarbled && !Final(t.State) {
		s.set(in.At, t, StateLost, "unreadable_status", detail+"; is serfdeploy the same version on that node?")
		return
	}
	s.observer.event(Event{Time: in.At, Node: in.From, State: "garbled", Detail: detail})
}

// joined follows a node the CLI did not list that has a record of this
// request: the trigger reached it (it joined just before the deploy).
func (s *deployState) joined(at time.Time, name string) *NodeResult {
	t := &NodeResult{Node: name, State: StateWaiting, JoinedLate: true}
	s.targets[name] = t
	s.order = append(s.order, name)
	by := "the master's trigger reached it"
	if s.runSent {
		by = "the run request reached it" // a run, or a rollout's batch: the CLI sent it
	}
	s.observer.event(Event{Time: at, Node: name, State: "joined", Detail: "not in the target list when the " + s.kind + " started; " + by})
	return t
}

// syncAnswer applies a master's code-sync phase; the error it returns
// ends the deploy.
func (s *deployState) syncAnswer(at time.Time, m *MasterResult, st *protocol.Status) error {
	if st.Request.Conflicts(s.request()) {
		return Errorf(ExitUsage, "deploy id %s was already used on master %s for a %s; choose another --id, or leave --id out for a new one", s.opts.ID, m.Node, st.Request)
	}
	m.Reached, m.Listed, m.Targets = max(m.Reached, st.Reached), max(m.Listed, st.Listed), max(m.Targets, st.Targets)
	m.batched = m.batched || st.Batched
	if st.Sync == m.Phase {
		return nil
	}
	m.Phase, m.Message, m.Commit = st.Sync, st.SyncMsg, st.Commit
	s.observer.event(Event{Time: at, Node: m.Node, State: "sync " + st.Sync, Detail: st.SyncMsg, Master: true})
	switch st.Sync {
	case protocol.PhaseFailed:
		code := ExitInfra
		switch st.SyncReason {
		case protocol.ReasonUnknownRef, protocol.ReasonUnknownModule, protocol.ReasonUnsafeModule:
			// No retry fixes a name that does not exist, or a tree
			// refused for what it holds.
			code = ExitUsage
		}
		if st.SyncReason == protocol.ReasonTriggerFailed {
			return Errorf(code, "master %s installed the module but could not trigger the Puppet runs: %s", m.Node, st.SyncMsg)
		}
		return Errorf(code, "code sync failed on master %s: %s", m.Node, st.SyncMsg)
	case protocol.PhaseTriggered, protocol.PhaseSynced:
		if m.done() && s.triggeredAt.IsZero() {
			s.triggeredAt = at
		}
	}
	return nil
}

// runAnswer applies a target's answer to the CLI's puppetrun query.
func (s *deployState) runAnswer(in runAnswer) {
	t, ok := s.targets[in.From]
	if !ok {
		return
	}
	var a protocol.RunAnswer
	if err := protocol.DecodeAnswerFrom(in.Payload, in.From, &a); err != nil {
		s.observer.event(Event{Time: in.At, Node: in.From, State: "garbled", Detail: "unreadable puppetrun answer"})
		return
	}
	if a.Result == protocol.RunAlready && a.Request.Conflicts(s.request()) {
		s.observer.event(Event{Time: in.At, Node: in.From, State: "conflict",
			Detail: fmt.Sprintf("it already ran %s for a %s; not counted", s.opts.ID, a.Request)})
		return
	}
	switch a.Result {
	case protocol.RunStarted, protocol.RunAlready:
		s.heard[in.From] = true
		s.set(in.At, t, StatePending, "", "")
	case protocol.RunQueued:
		s.heard[in.From] = true
		s.set(in.At, t, StatePending, "queued", a.Message)
	case protocol.RunBusy:
		s.set(in.At, t, StateBusy, protocol.ReasonLocked, a.Message)
	case protocol.RunDisabled:
		s.set(in.At, t, StateDisabled, protocol.ReasonDisabled, a.Message)
	case protocol.RunRejected:
		s.set(in.At, t, StateFailed, "rejected", a.Message)
	}
}

// logRecords applies the logging service's records.
func (s *deployState) logRecords(in logRecords) {
	if in.Final {
		s.logRead = true
	}
	for _, name := range s.order {
		t := s.targets[name]
		if !s.active(name) {
			continue
		}
		rec, ok := in.Records[name]
		if ok && recordRequest(rec).Conflicts(s.request()) {
			ok = false // a record of another request under the same id
		}
		finished := ok && rec.Event == protocol.LogFinished
		switch {
		case in.Final && wantsFinalRecord(t):
			if !finished {
				t.LogMissing = true
				s.observer.note(fmt.Sprintf("%s finished, but the logging service has no finished record for it", name))
				continue
			}
			before := t.State
			if s.applyFinal(t, rec); t.State != before {
				t.Changes = append(t.Changes, Change{At: in.At, State: t.State})
			}
		case !in.Final && !Final(t.State) && finished:
			// A run the polls have not seen finish (a node whose answers
			// are lost, e.g. too large for serf).
			s.heard[name] = true
			s.applyFinal(t, rec)
			state := t.State
			t.State = "" // report the change
			s.set(in.At, t, state, t.Reason, t.Message+" (from the logging service; the node's answers did not say)")
		}
	}
}

// wantsFinalRecord reports whether a target's final status is still to be
// read from the logging service: it ran to an end the polls saw, and no
// earlier read (a batch's) took or missed its record.
func wantsFinalRecord(t *NodeResult) bool {
	return (t.ExitCode != nil || t.State == StateFinished || t.State == StateFailed) && t.Source != "log" && !t.LogMissing
}

// checkMissed gives up on targets that still know nothing of the run well
// after it was triggered: the request never reached them.
func (s *deployState) checkMissed(at time.Time) {
	if s.triggeredAt.IsZero() {
		return
	}
	for _, name := range s.order {
		since, ok := s.sentAt[name]
		if !ok {
			since = s.triggeredAt
		}
		if t := s.targets[name]; t.State == StateWaiting && s.active(name) && at.Sub(since) >= s.opts.MissedAfter {
			msg := fmt.Sprintf("no run for %s was started on this node %s after the trigger", s.opts.ID, s.opts.MissedAfter)
			if s.answeredAt[name].IsZero() {
				msg += "; " + noAnswerHint
			}
			s.set(at, t, StateMissed, "", msg)
		}
	}
}

// giveUp ends every unfinished target of the batch under way in state.
func (s *deployState) giveUp(at time.Time, state, message string) {
	for _, name := range s.order {
		t := s.targets[name]
		if Final(t.State) || !s.active(name) {
			continue
		}
		seen := "last seen " + t.State
		switch {
		case s.heard[name]:
		case s.answeredAt[name].IsZero():
			// Not one answer to any query: most often serf runs no
			// serfdeploy handler there.
			seen = noAnswerHint
		default:
			seen = "it answered, but never had a record of this deploy: the run request did not reach it"
		}
		s.set(at, t, state, "", fmt.Sprintf("%s (%s)", message, seen))
	}
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

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
	if s.answeredSinceLeft(in.Node) {
		return // it answers our queries: serf's list is behind, not the node
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

// worthAsking reports whether the driver should ask a node it polled: serf
// lists it alive; or it answered lately though the CLI's agent does not
// list it yet; or serf lists it left, and it is a target within its grace
// to come back. A left agent cannot answer, so an answer proves the CLI's
// agent behind: a node that had left and joined again under its name was
// still "left" to the CLI's agent 17 s later, while it ran and failed the
// deploy, and was reported lost (the oracle's wrong code, seed 42
// scenario 65: exit 4 for 1).
func (s *deployState) worthAsking(node, serf string, at time.Time) bool {
	if serf == serfrpc.StatusAlive || serf == "" && s.unlisted(node, at) {
		return true
	}
	_, left := s.leftAt[node]
	t, isTarget := s.targets[node]
	return left && isTarget && !Final(t.State)
}

// answeredSinceLeft reports whether a node serf listed as left has
// answered since it was first seen so.
func (s *deployState) answeredSinceLeft(node string) bool {
	left, ok := s.leftAt[node]
	return ok && s.answeredAt[node].After(left)
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
// still within Options.LeaveGrace of when it was first seen so, or one it
// lists as failed is seen so for the first time (it is asked once more).
func (s *deployState) mayReturn(name, serfStatus string, at time.Time) bool {
	grace, detail := s.opts.LeaveGrace, fmt.Sprintf("its serf agent left; its run may go on: waiting %s for it to come back", s.opts.LeaveGrace)
	switch serfStatus {
	case serfrpc.StatusLeft, serfrpc.StatusLeaving:
	case serfrpc.StatusFailed:
		// Serf has waited out its own suspicion already: no grace, but
		// the node is asked once more. On a loaded machine serf called a
		// node failed that ran and answered fine (oracle seed 41 scenario
		// 6: reported lost, its run finished).
		grace, detail = 0, "serf's failure detection reports it unreachable: asking it once more"
	default:
		return false
	}
	if t, ok := s.targets[name]; !ok || Final(t.State) {
		return false
	}
	since, seen := s.leftAt[name]
	if !seen {
		s.leftAt[name] = at
		s.observer.event(Event{Time: at, Node: name, State: serfStatus, Detail: detail})
		return true
	}
	return at.Sub(since) < grace
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
		if _, left := s.leftAt[name]; left {
			continue // its agent left: it has LeaveGrace to come back, then it is lost
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

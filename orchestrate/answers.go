package orchestrate

import (
	"fmt"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// How the deploy's state takes what the nodes and the logging service say:
// a status answer, a master's code sync, a run answer, log records.

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

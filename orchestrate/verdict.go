package orchestrate

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// verdict decides how the deploy ended: its exit code and the one line
// that says why. It is the only place a watched deploy's exit code is
// decided; the process exits with it, and the result file holds it.
//
//   - Ended early (s.end): the code that error carries, and its line.
//   - Otherwise by the targets' states, after --on-disabled/--on-running
//     (decideExit): a failure beats an incomplete deploy, which beats
//     pending changes (--noop), which beat success.
//   - An exit 0 the CLI cannot account for (a master's trigger reached
//     nodes it never heard from) is 4.
func (s *deployState) verdict() (code int, line string) {
	if s.end != nil {
		return codeOf(s.end), s.end.Error()
	}
	nodes := s.nodes()
	code = decideExit(nodes)
	line = outcome(nodes, code)
	if why := s.unaccounted(); code == ExitOK && why != "" {
		code = ExitIncomplete
		line = fmt.Sprintf("%s; but %s (exit %d)", strings.TrimSuffix(line, fmt.Sprintf(" (exit %d)", ExitOK)), why, ExitIncomplete)
	}
	return code, line
}

// nodes lists the targets' results in order, with the user's policies
// applied.
func (s *deployState) nodes() []NodeResult {
	out := make([]NodeResult, 0, len(s.order))
	for _, name := range s.order {
		n := *s.targets[name]
		n.State = s.effective(&n)
		if n.State != s.targets[name].State && n.Reason == "" {
			n.Reason = s.targets[name].State
		}
		out = append(out, n)
	}
	return out
}

// effective is a target's state after --on-disabled and --on-running: a
// disabled or busy target the user said to skip is skipped.
func (s *deployState) effective(t *NodeResult) string {
	switch {
	case t.State == StateDisabled && s.opts.OnDisabled == PolicySkip,
		t.State == StateBusy && s.opts.OnRunning == PolicySkip:
		return StateSkipped
	}
	return t.State
}

// result is the whole Result: the verdict with every node and master.
func (s *deployState) result(res *Result, finished time.Time) *Result {
	res.Finished = finished
	res.Fired = s.fired
	res.Nodes = s.nodes()
	res.Masters = nil
	for _, name := range sortedKeys(s.masters) {
		res.Masters = append(res.Masters, *s.masters[name])
	}
	res.ExitCode, res.Outcome = s.verdict()
	res.Error = ""
	if s.end != nil {
		res.Error = res.Outcome
	}
	switch {
	case s.logRead:
		res.StatusSource = "the logging service"
	case s.opts.Log == nil:
		res.StatusSource = "the nodes' puppet-status answers (no logging service configured)"
	}
	return res
}

// unaccounted says which nodes of the deploy the CLI cannot account for,
// or "" when it can: a deploy it cannot say all of succeeded is not exit 0.
func (s *deployState) unaccounted() string {
	heard := len(s.heard)
	switch {
	case s.reached() > heard:
		// The trigger reached nodes the CLI never heard from.
		return fmt.Sprintf("the masters' trigger reached %d node(s) and only %d answered for this deploy", s.reached(), heard)
	case s.listed() > heard:
		// The trigger was sent to an alive target that never answered
		// (one the gossip missed never ran).
		return fmt.Sprintf("the masters' trigger was sent to %d node(s) and only %d answered for this deploy", s.listed(), heard)
	case len(s.silent) > 0:
		return fmt.Sprintf("%d master(s) never answered whether they have a record of it (%s)", len(s.silent), someNames(s.silent))
	case s.expected() > len(s.targets):
		// A re-attached watch knows the targets only from their records:
		// one that left before the trigger, or a batch the aborted
		// rollout never started, has none.
		return fmt.Sprintf("the deploy listed %d target(s) and only %d have a record of it; the others never ran it (see `serfdeploy status --id %s`)", s.expected(), len(s.targets), s.opts.ID)
	}
	return ""
}

// decideExit computes the exit code from the nodes' states: a failure beats
// an incomplete deploy, which beats pending changes (--noop), which beat
// success.
func decideExit(nodes []NodeResult) int {
	code := ExitOK
	for _, n := range nodes {
		switch n.State {
		case StateFailed, StateBusy, StateDisabled, StateStale:
			return ExitFailed
		case StateLost, StateTimeout, StateMissed, StateWaiting, StatePending, StateRunning, StateInterrupted:
			code = ExitIncomplete
		case StateFinished:
			if n.Pending > 0 && code == ExitOK {
				code = ExitPending
			}
		}
	}
	return code
}

// outcome says in one line how it ended.
func outcome(nodes []NodeResult, code int) string {
	c := map[string]int{}
	for _, n := range nodes {
		c[n.State]++
	}
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
	}[code]
	if code == ExitOK && c[StateFinished] == 0 && c[StateSkipped] > 0 {
		what = "no target ran: every one was skipped"
	}
	if p := pendingNodes(nodes); p > 0 {
		parts = append(parts, fmt.Sprintf("%d with pending changes", p))
	}
	return fmt.Sprintf("%s: %s (exit %d)", strings.Join(parts, ", "), what, code)
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

// codeOf returns the exit code an error stands for: the one it carries
// (*Error, wrapped or not), else 5: serf or the logging service failed.
func codeOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ExitInfra
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

// someNames lists the first few names, for a one-line message.
func someNames(names []string) string {
	const most = 5
	if len(names) <= most {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:most], ", "), len(names)-most)
}

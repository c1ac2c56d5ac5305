package orchestrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// watch follows one deploy or run to the end: it polls puppet-status on the
// nodes that have not finished, and serf's member list for nodes that
// failed, until every target has a final state or the deadline passes.
type watch struct {
	rpc      RPC
	opts     *Options
	observer Observer
	res      *Result

	targets     map[string]*NodeResult
	masters     map[string]*MasterResult
	order       []string
	triggeredAt time.Time // zero until a master has fired puppetrun (or the run was fired)
	// eventPayload and runPayload are sent again to nodes that missed them
	// (resend.go); lastSent is when anything was last sent.
	eventPayload []byte
	runPayload   []byte
	lastSent     time.Time
	garbled      map[string]int
	// heard holds the targets that answered with a record of this request:
	// the CLI can account for them. A master's trigger that reached more
	// nodes than these is never an exit 0.
	heard map[string]bool
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
	// batch: this watch follows one batch of a rollout, which accounts for
	// the other targets itself; otherBatches names them: they answer for
	// the deploy too, and are not late joiners of this batch.
	batch         bool
	otherBatches  map[string]bool
	lastDiscovery time.Time
	lastLogCheck  time.Time
	resends       resends
	lastProgress  time.Time
}

// A node whose answers cannot be read this many times in a row is given up.
const maxGarbled = 3

func newWatch(rpc RPC, opts *Options, kind string, targets, masters []serfrpc.Member) *watch {
	w := &watch{
		rpc: rpc, opts: opts, observer: opts.Observer,
		targets: map[string]*NodeResult{}, masters: map[string]*MasterResult{},
		garbled: map[string]int{}, heard: map[string]bool{}, leftAt: map[string]time.Time{}, answeredAt: map[string]time.Time{},
		res: NewResult(kind, *opts),
	}
	for _, t := range targets {
		w.targets[t.Name] = &NodeResult{Node: t.Name, State: StateWaiting}
		w.order = append(w.order, t.Name)
	}
	for _, m := range masters {
		w.masters[m.Name] = &MasterResult{Node: m.Name, Phase: protocol.PhaseUnknown}
	}
	return w
}

// loop polls until every target is final, the deadline passes or ctx ends.
func (w *watch) loop(ctx context.Context) error {
	deadline := w.res.Started.Add(w.opts.Timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	// Nodes that joined late are looked for once more shortly before the
	// deadline: at the deadline the agent connection is gone, and one that
	// ran and failed must make a timeout exit 1, not 4.
	joinCheckAt, joinChecked := deadline.Add(-joinCheckLead(w.opts.Timeout)), false
	for {
		err := w.poll(ctx, w.pendingNodes())
		if err == nil && !joinChecked && !time.Now().Before(joinCheckAt) {
			joinChecked = true
			err = w.askJoined(ctx)
		}
		if err == nil && w.allFinal() {
			// Nodes the masters reached and the CLI never heard from may
			// still be found; they must not be left out of the result.
			if err = w.discover(ctx, true); err == nil && w.allFinal() {
				return nil
			}
		}
		if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			if time.Now().Before(deadline) {
				// Count before marking: once marked, they are final.
				n := w.unfinished()
				w.giveUp(StateInterrupted, "the CLI stopped watching before it finished; the run goes on")
				return Errorf(ExitIncomplete, "interrupted: %d node(s) had not finished; their runs go on: re-attach with `serfdeploy watch %s` (or look with `serfdeploy status --id %s`)", n, w.opts.ID, w.opts.ID)
			}
			w.settleFromLog(context.Background(), true)
			w.giveUp(StateTimeout, fmt.Sprintf("still unfinished at the %s timeout", w.opts.Timeout))
			return nil
		}
		if err != nil {
			return err
		}
		w.progress()
		wait := w.interval()
		if until := time.Until(joinCheckAt); !joinChecked && until > 0 && until < wait {
			wait = until
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// joinCheckLead is how long before the deadline the last look for late
// joiners is taken: time for a member list and one status query.
func joinCheckLead(timeout time.Duration) time.Duration {
	return min(3*time.Second, timeout/4)
}

// interval is the time between polls: short when few nodes are left, so
// that the last run's end is seen within a fraction of a second, and longer
// for a large fleet, whose every poll forks a handler on each node asked.
func (w *watch) interval() time.Duration {
	d := time.Duration(len(w.pendingNodes())) * 20 * time.Millisecond
	if d < minPollInterval {
		d = minPollInterval
	}
	if d > w.opts.PollInterval {
		d = w.opts.PollInterval
	}
	// Nodes whose handler queue is behind are not helped by being asked
	// more often than --poll-interval: each poll is one more handler run
	// in that queue.
	if w.busyPending() {
		d = w.opts.PollInterval
	}
	return d
}

const minPollInterval = 250 * time.Millisecond

func (w *watch) busyPending() bool {
	for _, name := range w.pendingNodes() {
		if w.resends.busy[name] {
			return true
		}
	}
	return false
}

// poll does one round: member statuses, then one puppet-status query to the
// nodes still of interest.
func (w *watch) poll(ctx context.Context, ask []string) error {
	if len(ask) == 0 {
		return nil
	}
	members, err := w.rpc.Members(ctx, serfrpc.Filter{Nodes: ask}, "")
	if err != nil {
		return infra(err)
	}
	status := map[string]string{}
	for _, m := range members {
		status[m.Name] = m.Status
	}
	var alive []string
	for _, name := range ask {
		s := status[name]
		if s == serfrpc.StatusAlive || s == "" && w.unlisted(name) {
			delete(w.leftAt, name)
			alive = append(alive, name)
			continue
		}
		if w.mayReturn(name, s) {
			continue
		}
		if s == "" {
			s = "gone (reaped)"
		}
		if err := w.lose(name, s); err != nil {
			return err
		}
	}
	if len(alive) == 0 {
		return nil
	}
	if err := w.askStatus(ctx, alive); err != nil {
		return err
	}
	if err := w.discover(ctx, false); err != nil {
		return err
	}
	if rerr := w.resend(ctx); rerr != nil {
		return rerr
	}
	w.settleFromLog(ctx, false)
	w.checkMissed()
	return nil
}

// pollPatience is how long a status poll waits for nodes that have not
// even acknowledged it; the next poll asks them again.
const pollPatience = time.Second

// askStatus asks nodes for their phase of this deploy. Answers are taken
// as they arrive, so that one slow node does not delay what the others
// report.
func (w *watch) askStatus(ctx context.Context, nodes []string) error {
	payload, _ := json.Marshal(protocol.StatusRequest{ID: w.opts.ID})
	return w.queryStatus(ctx, serfrpc.Query{
		Name: protocol.QueryPuppetStatus, Payload: payload,
		Filter: serfrpc.Filter{Nodes: nodes}, Timeout: w.opts.QueryTimeout, Expect: nodes,
		Resend: resendQuery, Patience: pollPatience,
	}, func(string) bool { return true })
}

// queryStatus sends a puppet-status query and applies the answers of the
// nodes take accepts as they arrive. The first answer that decides the
// deploy's end (a conflicting id, a failed sync) is the error returned.
func (w *watch) queryStatus(ctx context.Context, q serfrpc.Query, take func(from string) bool) error {
	var answerErr error
	q.OnResponse = func(r serfrpc.Response) {
		if answerErr == nil && take(r.From) {
			answerErr = w.statusAnswer(r)
		}
	}
	_, err := w.query(ctx, q)
	if answerErr != nil {
		return answerErr
	}
	if err != nil {
		return w.sendError(ctx, err)
	}
	return nil
}

// sendError classifies an error from serf during the watch: the end of
// ctx (interrupt or deadline) is the loop's business, anything else is the
// agent's failure.
func (w *watch) sendError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return infra(err)
}

// pendingNodes are the masters not done syncing and the targets not final.
func (w *watch) pendingNodes() []string {
	var out []string
	for name, m := range w.masters {
		if !m.done() {
			if _, isTarget := w.targets[name]; !isTarget {
				out = append(out, name)
			}
		}
	}
	// Until a master has fired puppetrun no run can have started: only the
	// masters are asked, often, so that the trigger is seen at once.
	syncing := len(w.masters) > 0 && w.triggeredAt.IsZero()
	for _, name := range w.order {
		if _, isMaster := w.masters[name]; syncing && !isMaster {
			continue
		}
		if !Final(w.targets[name].State) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// unlistedGrace: how long a node that answered is taken as alive although
// the CLI's agent does not list it.
const unlistedGrace = 30 * time.Second

// unlisted reports whether a node the CLI's agent does not list answered
// within unlistedGrace: one that joined just before the trigger answers
// before the gossip of its join reaches the CLI's agent, and is not gone.
// Before, it was reported lost at the next poll (the oracle's wrong code,
// seed 6 scenario 1).
func (w *watch) unlisted(name string) bool {
	at, ok := w.answeredAt[name]
	return ok && time.Since(at) < unlistedGrace
}

// mayReturn reports whether a target serf lists as left or leaving is
// still within Options.LeaveGrace of when it was first seen so.
func (w *watch) mayReturn(name, serfStatus string) bool {
	if serfStatus != serfrpc.StatusLeft && serfStatus != serfrpc.StatusLeaving {
		return false
	}
	if t, ok := w.targets[name]; !ok || Final(t.State) {
		return false
	}
	since, seen := w.leftAt[name]
	if !seen {
		w.leftAt[name] = time.Now()
		w.observer.event(Event{Time: time.Now(), Node: name, State: serfStatus,
			Detail: fmt.Sprintf("its serf agent left; its run may go on: waiting %s for it to come back", w.opts.LeaveGrace)})
		return true
	}
	return time.Since(since) < w.opts.LeaveGrace
}

// lose marks a node serf reports failed or gone.
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

func (w *watch) lose(name, serfStatus string) error {
	if t, ok := w.targets[name]; ok && !Final(t.State) {
		w.set(t, StateLost, "", lostDetail(serfStatus, w.opts.LeaveGrace))
	}
	if m, ok := w.masters[name]; ok && !m.done() {
		m.Phase = StateLost
		w.observer.event(Event{Time: time.Now(), Node: name, State: StateLost, Detail: "master " + serfStatus + " during code sync", Master: true})
		if w.triggeredAt.IsZero() && w.allMastersDone() {
			return Errorf(ExitInfra, "every master was lost before the code sync finished (last: %s, %s)", name, serfStatus)
		}
	}
	return nil
}

// statusAnswer applies one puppet-status answer.
func (w *watch) statusAnswer(r serfrpc.Response) error {
	var st protocol.Status
	if err := protocol.DecodeAnswerFrom(r.Payload, r.From, &st); err != nil {
		w.garbled[r.From]++
		detail := fmt.Sprintf("unreadable puppet-status answer: %q", protocol.Truncate(string(r.Payload), 120))
		if t, ok := w.targets[r.From]; ok && w.garbled[r.From] >= maxGarbled && !Final(t.State) {
			w.set(t, StateLost, "unreadable_status", detail+"; is serfdeploy the same version on that node?")
		} else {
			w.observer.event(Event{Time: time.Now(), Node: r.From, State: "garbled", Detail: detail})
		}
		return nil
	}
	w.garbled[r.From] = 0
	w.answeredAt[r.From] = time.Now()
	if m, ok := w.masters[r.From]; ok && st.Sync != "" && st.Sync != protocol.PhaseUnknown {
		if err := w.syncAnswer(m, &st); err != nil {
			return err
		}
	}
	if st.Phase == protocol.PhaseUnknown || st.Phase == "" {
		if t, ok := w.targets[r.From]; ok && t.State == StatePending {
			// Its record is gone: the handler that took the request was
			// stopped before a worker did, and the node gave the record
			// up. It is waiting again, so that the request is sent again.
			w.set(t, StateWaiting, "", st.Message)
		}
		return nil
	}
	if st.Request.Conflicts(w.request()) {
		w.observer.event(Event{Time: time.Now(), Node: r.From, State: "conflict",
			Detail: fmt.Sprintf("its record of %s is for a %s, not this %s; not counted", w.opts.ID, st.Request, w.request())})
		return nil
	}
	t, ok := w.targets[r.From]
	if !ok {
		if st.Phase == protocol.PhaseSkipped || w.otherBatches[r.From] {
			return nil
		}
		// The master's trigger reached a node the CLI did not list (it
		// joined just before the deploy): follow it like any target.
		t = &NodeResult{Node: r.From, State: StateWaiting, JoinedLate: true}
		w.targets[r.From] = t
		w.order = append(w.order, r.From)
		by := "the master's trigger reached it"
		if w.runPayload != nil {
			by = "the run request reached it" // a run, or a rollout's batch: the CLI sent it
		}
		w.observer.event(Event{Time: time.Now(), Node: r.From, State: "joined", Detail: "not in the target list when the " + w.res.Kind + " started; " + by})
	}
	w.heard[r.From] = true
	w.runTargets = max(w.runTargets, st.Targets)
	if Final(t.State) {
		return nil
	}
	state := stateOf(st.Phase)
	if state == StateWaiting {
		return nil
	}
	t.ExitCode, t.Changed, t.Failed, t.Total, t.DurationSec, t.Pending = st.Exit, st.Changed, st.Failed, st.Total, st.Duration, st.Pending
	t.ConfigVersion = st.Applied
	t.Source = "status"
	reason, message := st.Reason, st.Message
	if state == StateFinished {
		if stale := w.staleDetail(st.Applied); stale != "" {
			state, reason, message = StateStale, "stale", stale
		}
	}
	w.set(t, state, reason, message)
	return nil
}

// syncAnswer applies a master's code-sync phase.
func (w *watch) syncAnswer(m *MasterResult, st *protocol.Status) error {
	if st.Request.Conflicts(w.request()) {
		return Errorf(ExitUsage, "deploy id %s was already used on master %s for a %s; choose another --id, or leave --id out for a new one", w.opts.ID, m.Node, st.Request)
	}
	m.Reached, m.Listed, m.Targets = max(m.Reached, st.Reached), max(m.Listed, st.Listed), max(m.Targets, st.Targets)
	m.batched = m.batched || st.Batched
	if st.Sync == m.Phase {
		return nil
	}
	m.Phase, m.Message, m.Commit = st.Sync, st.SyncMsg, st.Commit
	w.observer.event(Event{Time: time.Now(), Node: m.Node, State: "sync " + st.Sync, Detail: st.SyncMsg, Master: true})
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
		if !m.done() {
			break // synced, and the master's trigger is still to come
		}
		if w.triggeredAt.IsZero() {
			w.triggeredAt = time.Now()
		}
	}
	return nil
}

// request is what this watch asked for, as the nodes' records name it.
func (w *watch) request() protocol.Request { return w.opts.request() }

// runAnswer applies a node's answer to the puppetrun query of `run`.
func (w *watch) runAnswer(r serfrpc.Response) {
	t, ok := w.targets[r.From]
	if !ok {
		return
	}
	var a protocol.RunAnswer
	if err := protocol.DecodeAnswerFrom(r.Payload, r.From, &a); err != nil {
		w.observer.event(Event{Time: time.Now(), Node: r.From, State: "garbled", Detail: "unreadable puppetrun answer"})
		return
	}
	if a.Result == protocol.RunAlready && a.Request.Conflicts(w.request()) {
		w.observer.event(Event{Time: time.Now(), Node: r.From, State: "conflict",
			Detail: fmt.Sprintf("it already ran %s for a %s; not counted", w.opts.ID, a.Request)})
		return
	}
	switch a.Result {
	case protocol.RunStarted, protocol.RunAlready:
		w.heard[r.From] = true
		w.set(t, StatePending, "", "")
	case protocol.RunQueued:
		w.heard[r.From] = true
		w.set(t, StatePending, "queued", a.Message)
	case protocol.RunBusy:
		w.set(t, StateBusy, protocol.ReasonLocked, a.Message)
	case protocol.RunDisabled:
		w.set(t, StateDisabled, protocol.ReasonDisabled, a.Message)
	case protocol.RunRejected:
		w.set(t, StateFailed, "rejected", a.Message)
	}
}

// checkMissed gives up on targets that still know nothing of the run well
// after it was triggered: the request never reached them.
func (w *watch) checkMissed() {
	if w.triggeredAt.IsZero() || time.Since(w.triggeredAt) < w.opts.MissedAfter {
		return
	}
	for _, name := range w.order {
		if t := w.targets[name]; t.State == StateWaiting {
			msg := fmt.Sprintf("no run for %s was started on this node %s after the trigger", w.opts.ID, w.opts.MissedAfter)
			if w.answeredAt[name].IsZero() {
				msg += "; " + noAnswerHint
			}
			w.set(t, StateMissed, "", msg)
		}
	}
}

// set changes a target's state, reporting real changes only.
func (w *watch) set(t *NodeResult, state, reason, message string) {
	if t.State == state && t.Message == message {
		return
	}
	t.State, t.Reason, t.Message = state, reason, message
	detail := message
	if t.State == StateFinished || t.State == StateFailed {
		detail = fmt.Sprintf("changed %d, failed %d, total %d, %.1fs", t.Changed, t.Failed, t.Total, t.DurationSec)
		if message != "" {
			detail += ": " + message
		}
	}
	w.observer.event(Event{Time: time.Now(), Node: t.Node, State: state, Detail: detail})
	// The count goes over every target: after each change it made a
	// deploy's CPU grow with the square of the fleet (5.9 s of CLI CPU at
	// 10,000 simulated members, 59 % of it here). The loop counts after
	// every poll; between polls, at most every progressEvery.
	if time.Since(w.lastProgress) >= progressEvery {
		w.progress()
	}
}

// progressEvery paces the spinner's count between polls.
const progressEvery = 200 * time.Millisecond

func (w *watch) giveUp(state, message string) {
	for _, name := range w.order {
		t := w.targets[name]
		if Final(t.State) {
			continue
		}
		seen := "last seen " + t.State
		switch {
		case w.heard[name]:
		case w.answeredAt[name].IsZero():
			// Not one answer to any query: most often serf runs no
			// serfdeploy handler there.
			seen = noAnswerHint
		default:
			seen = "it answered, but never had a record of this deploy: the run request did not reach it"
		}
		w.set(t, state, "", fmt.Sprintf("%s (%s)", message, seen))
	}
}

func (w *watch) allFinal() bool { return w.unfinished() == 0 }

func (w *watch) unfinished() int {
	n := 0
	for _, t := range w.targets {
		if !Final(t.State) {
			n++
		}
	}
	return n
}

func (w *watch) allMastersDone() bool {
	for _, m := range w.masters {
		if m.Phase != StateLost && m.Phase != protocol.PhaseFailed {
			return false
		}
	}
	return true
}

func (w *watch) progress() {
	w.lastProgress = time.Now()
	p := Progress{Total: len(w.targets)}
	for _, t := range w.targets {
		switch {
		case Final(t.State):
			p.Done++
		case t.State == StateRunning || t.State == StatePending:
			p.Running++
		default:
			p.Waiting++
		}
	}
	w.observer.progress(p)
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

// infra marks serf errors as infrastructure failures (exit 5).
func infra(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Code: ExitInfra, Err: err}
}

// query sends a query and counts what it cost, for the result's figures.
func (w *watch) query(ctx context.Context, q serfrpc.Query) (*serfrpc.QueryResult, error) {
	res, err := w.rpc.Query(ctx, q)
	if res != nil {
		w.res.Queries += res.Sent
	}
	w.resends.note(q, res)
	return res, err
}

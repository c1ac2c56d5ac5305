package orchestrate

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// watch drives one deploy, run or re-attached watch: it polls serf and the
// logging service and feeds what it sees to the deploy's state (state.go),
// which alone decides what it means. The watch decides only when to ask,
// whom, and what to send again.
type watch struct {
	rpc      RPC
	opts     *Options
	observer Observer
	s        *deployState
	res      *Result // what the result says of the command itself: id, kind, start, queries

	// eventPayload and runPayload are sent again to nodes that missed them
	// (resend.go); lastSent is when anything was last sent.
	eventPayload []byte
	runPayload   []byte
	lastSent     time.Time
	lastResend   time.Time // of the run request
	resends      resends

	lastDiscovery time.Time
	lastLogCheck  time.Time
	lastProgress  time.Time
}

func newWatch(rpc RPC, opts *Options, kind string, targets, masters []serfrpc.Member) *watch {
	return &watch{
		rpc: rpc, opts: opts, observer: opts.Observer,
		s:   newDeployState(opts, kind, targets, masters),
		res: NewResult(kind, *opts),
	}
}

// NewResult starts the result of a deploy or run; a command that ends
// before anything is watched still reports it, with Error set.
func NewResult(kind string, opts Options) *Result {
	return &Result{
		SchemaVersion: ResultSchema,
		ID:            opts.ID, Kind: kind, Module: opts.Module, Ref: opts.Ref, Environment: opts.Environment,
		Filter: describe(opts.Filter), Build: opts.Build, Started: time.Now(), Noop: opts.Puppet.Noop,
		Nodes: []NodeResult{}, // "nodes": [], never null, when it ends before any node is listed
	}
}

// follow starts the deploy with start (the deploy event, a rollout's code
// sync, or nothing for a watch that re-attached), then watches each batch
// to its end, reads its final statuses, and starts the next, until the
// state says it is over. It returns the result with the state's verdict,
// and an error carrying the same code when the deploy ended early.
func (w *watch) follow(ctx context.Context, start func(context.Context) error) (*Result, error) {
	deadlineAt := w.res.Started.Add(w.opts.Timeout)
	wctx, cancel := context.WithDeadline(ctx, deadlineAt)
	defer cancel()
	doing, err := "starting the "+w.s.kind, start(wctx)
	for err == nil && w.s.end == nil {
		if batch, ok := w.s.nextBatch(); ok {
			if len(w.s.sent) > 0 && w.s.window == 0 && w.opts.BatchSleep > 0 {
				if doing, err = "pausing between batches (--batch-sleep)", sleep(wctx, w.opts.BatchSleep); err != nil {
					break
				}
			}
			if doing, err = "sending the run request", w.sendRuns(wctx, batch); err != nil {
				break
			}
		}
		doing, err = "watching the runs", w.watchBatch(wctx, deadlineAt)
		if err != nil || w.s.end != nil {
			break
		}
		if !w.s.settled() {
			continue // --concurrency: a run ended, the next one starts
		}
		// The final read is bounded by LogWait, not by --timeout: a
		// deploy that timed out still reads what finished.
		doing, err = "reading the logging service", w.readFinal(ctx)
		if err != nil {
			break
		}
		w.s.apply(batchDone{At: time.Now()})
		if _, ok := w.s.nextBatch(); !ok {
			break
		}
	}
	if err != nil {
		w.ended(ctx, wctx, err, doing)
	}
	res := w.s.result(w.res, time.Now())
	if w.s.end != nil {
		return res, w.s.end
	}
	return res, nil
}

// ended feeds the state what ended a step: the user's interrupt, the
// deadline, or a failure of serf or the logging service.
func (w *watch) ended(ctx, wctx context.Context, err error, doing string) {
	now := time.Now()
	var d *during
	if errors.As(err, &d) {
		doing, err = d.doing, d.err
	}
	var coded *Error
	switch {
	case ctx.Err() != nil:
		w.s.apply(interrupt{At: now, Doing: doing})
	case errors.As(err, &coded):
		// Decided where it happened (a rollout's masters that never
		// synced): nothing ran, so it is no timeout of the runs.
		w.s.apply(failure{At: now, Err: err})
	case wctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		w.settleFromLog(ctx, true)
		w.s.apply(deadline{At: now})
		// What finished before the deadline is still read back.
		if rerr := w.readFinal(ctx); rerr != nil && ctx.Err() != nil {
			w.s.apply(interrupt{At: time.Now(), Doing: "reading the logging service"})
		} else if rerr != nil {
			w.s.apply(failure{At: time.Now(), Err: infra(rerr)})
		}
	default:
		w.s.apply(failure{At: now, Err: infra(err)})
	}
}

// during names what the driver was doing when err happened, for the line
// that ends the deploy ("interrupted while firing the deploy event").
type during struct {
	doing string
	err   error
}

func (d *during) Error() string { return d.err.Error() }
func (d *during) Unwrap() error { return d.err }

// watchBatch polls until every target of the batch under way is final,
// the deadline passes or the state ends.
func (w *watch) watchBatch(ctx context.Context, deadlineAt time.Time) error {
	// Nodes that joined late are looked for once more shortly before the
	// deadline: at the deadline the agent connection is gone, and one that
	// ran and failed must make a timeout exit 1, not 4.
	joinCheckAt, joinChecked := deadlineAt.Add(-joinCheckLead(w.opts.Timeout)), false
	for {
		err := w.poll(ctx, w.s.pending())
		if err == nil && !joinChecked && !time.Now().Before(joinCheckAt) {
			joinChecked = true
			err = w.askJoined(ctx)
		}
		if err == nil && w.s.end == nil && w.s.settled() {
			// Nodes the masters reached and the CLI never heard from may
			// still be found; they must not be left out of the result.
			if err = w.discover(ctx, true); err == nil && w.s.settled() {
				return nil
			}
		}
		if err != nil || w.s.end != nil {
			return err
		}
		if _, ok := w.s.nextBatch(); ok && w.s.window > 0 {
			return nil // room in the --concurrency window
		}
		w.progress()
		wait := w.interval()
		if until := time.Until(joinCheckAt); !joinChecked && until > 0 && until < wait {
			wait = until
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
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
	pending := w.s.pending()
	d := max(time.Duration(len(pending))*20*time.Millisecond, minPollInterval)
	d = min(d, w.opts.PollInterval)
	// Nodes whose handler queue is behind are not helped by being asked
	// more often than --poll-interval: each poll is one more handler run
	// in that queue.
	for _, name := range pending {
		if w.resends.busy[name] {
			return w.opts.PollInterval
		}
	}
	return d
}

const minPollInterval = 250 * time.Millisecond

// poll does one round: member statuses, then one puppet-status query to the
// nodes still of interest.
func (w *watch) poll(ctx context.Context, ask []string) error {
	if len(ask) == 0 {
		return nil
	}
	members, err := w.rpc.Members(ctx, serfrpc.Filter{Nodes: ask}, "")
	if err != nil {
		return err
	}
	status := map[string]string{}
	for _, m := range members {
		status[m.Name] = m.Status
	}
	now := time.Now()
	var alive []string
	for _, name := range ask {
		w.s.apply(memberSeen{At: now, Node: name, Serf: status[name]})
		if w.s.worthAsking(name, status[name], now) {
			alive = append(alive, name)
		}
	}
	if len(alive) == 0 || w.s.end != nil {
		return nil
	}
	if err := w.askStatus(ctx, alive); err != nil || w.s.end != nil {
		return err
	}
	if err := w.discover(ctx, false); err != nil || w.s.end != nil {
		return err
	}
	if err := w.resend(ctx); err != nil {
		return err
	}
	w.settleFromLog(ctx, false)
	w.s.apply(tick{At: time.Now()})
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

// queryStatus sends a puppet-status query and feeds the state the answers
// of the nodes take accepts, as they arrive.
func (w *watch) queryStatus(ctx context.Context, q serfrpc.Query, take func(from string) bool) error {
	q.OnResponse = func(r serfrpc.Response) {
		if take(r.From) {
			w.s.apply(statusAnswer{At: time.Now(), From: r.From, Payload: r.Payload})
			w.progressNow()
		}
	}
	_, err := w.query(ctx, q)
	return err
}

// progress reports the count to the spinner; progressNow at most every
// progressEvery, for answers that arrive between polls. Counting after
// every answer made a deploy's CPU grow with the square of the fleet (5.9 s
// of CLI CPU at 10,000 simulated members).
func (w *watch) progress() {
	w.lastProgress = time.Now()
	w.observer.progress(w.s.progress())
}

func (w *watch) progressNow() {
	if time.Since(w.lastProgress) >= progressEvery {
		w.progress()
	}
}

const progressEvery = 200 * time.Millisecond

// sendRuns sends puppetrun to the targets of the batch under way (a run,
// or a rollout's batch) and takes their answers.
func (w *watch) sendRuns(ctx context.Context, batch []string) error {
	w.runPayload = runRequest(w.opts, len(w.s.batchOf))
	f := w.opts.Filter
	if w.opts.batched() {
		w.observer.note(batchLine(w.s, batch))
		f = serfrpc.Filter{Nodes: batch}
	}
	w.s.apply(runSent{At: time.Now(), Nodes: batch})
	_, err := w.query(ctx, serfrpc.Query{
		Name: protocol.QueryPuppetRun, Payload: w.runPayload, Filter: f,
		Timeout: w.opts.QueryTimeout, Expect: batch, Resend: resendQuery, Patience: runPatience,
		OnResponse: func(r serfrpc.Response) {
			w.s.apply(runAnswer{At: time.Now(), From: r.From, Payload: r.Payload})
		},
	})
	w.lastSent = time.Now()
	return err
}

// runPatience is how long the run request waits for targets that have
// not acknowledged it: long enough for the query's own re-ask (resendQuery)
// to reach one the gossip missed. With the poll's 1 s, the query ended as
// the re-ask was due, and a missed target waited for the watch's resend,
// 4 s or more later (seen with --concurrency on a loaded machine: a slot
// empty for 8 s).
const runPatience = 2500 * time.Millisecond

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

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

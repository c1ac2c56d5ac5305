package serfsim

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// Serf's default query timeout inputs: the LAN gossip interval and
// QueryTimeoutMult (serf/config.go, memberlist DefaultLANConfig).
const (
	gossipInterval   = 200 * time.Millisecond
	queryTimeoutMult = 16
)

// queryRun is one query on its way through the fleet: which node receives
// it when, and when its acks and answers are back.
type queryRun struct {
	name     string
	payload  []byte
	ltime    uint64
	id       uint32
	deadline time.Time
	steps    []step
}

// step is one thing that happens to a query at a given time: a node's ack
// arrives, a node runs its handler and its answer arrives, or the deadline
// passes.
type step struct {
	at   time.Time
	kind string // recordAck, recordResponse or recordDone
	n    *node
}

// startQuery is what the agent does for the RPC `query` command: serf's
// checks (agent.Query's reserved prefix, serf.Query's default timeout and
// size limit), then the delivery plan.
func (f *Fleet) startQuery(req *queryRequest) (*queryRun, error) {
	if strings.HasPrefix(req.Name, "_serf_") && (req.Name != "_serf_ping" || req.Payload != nil) {
		return nil, fmt.Errorf("Queries cannot contain the '%s' prefix", "_serf_")
	}
	timeout := req.Timeout
	if timeout == 0 {
		// serf/query.go DefaultQueryTimeout
		timeout = gossipInterval * queryTimeoutMult * time.Duration(math.Ceil(math.Log10(float64(len(f.nodes)+1))))
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	q := &queryRun{name: req.Name, payload: req.Payload, ltime: f.queryClock, id: uint32(f.rng.Int32())}
	size, err := querySize(&protocol.SerfQuery{
		LTime: q.ltime, ID: q.id, Addr: f.local.addr, Port: memberPort, SourceNode: f.local.name,
		RelayFactor: req.RelayFactor, Timeout: timeout, Name: req.Name, Payload: req.Payload,
	}, req.FilterNodes, req.FilterTags, req.RequestAck)
	if err != nil {
		f.stats.QueriesRefused++
		return nil, err
	}
	f.stats.LargestQuery = max(f.stats.LargestQuery, size)
	if size > QuerySizeLimit {
		f.stats.QueriesRefused++
		return nil, fmt.Errorf("query exceeds limit of %d bytes", QuerySizeLimit)
	}
	f.queryClock++
	f.stats.Queries++
	f.stats.QueriesByName[req.Name]++

	start := time.Now()
	q.deadline = start.Add(timeout)
	filter := newQueryFilter(req.FilterNodes, req.FilterTags)
	for _, n := range f.nodes {
		if n.status() != statusAlive || !filter.match(n) {
			continue
		}
		var in time.Duration // the local agent handles its own query at once
		if n != f.local {
			if f.rng.Float64() < f.cfg.LossRate {
				f.stats.DeliveriesLost++
				continue
			}
			in = f.gossipLocked()
		}
		if req.RequestAck {
			q.steps = append(q.steps, step{at: start.Add(in + f.gossipLocked()), kind: recordAck, n: n})
		}
		q.steps = append(q.steps, step{at: start.Add(in + f.gossipLocked()), kind: recordResponse, n: n})
	}
	q.steps = append(q.steps, step{at: q.deadline, kind: recordDone})
	sort.Slice(q.steps, func(i, j int) bool { return q.steps[i].at.Before(q.steps[j].at) })
	return q, nil
}

// run plays the query out: acks and answers are passed to send until the
// deadline, then the done record. Nodes still run their handlers after the
// deadline or when send fails (the RPC client went away): they received the
// query all the same.
func (f *Fleet) run(q *queryRun, send func(queryRecord) error) {
	sending, done := true, false
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for _, s := range q.steps {
		if wait := time.Until(s.at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-f.ctx.Done():
				return
			}
		}
		switch s.kind {
		case recordDone:
			done = true
			if sending {
				sending = send(queryRecord{Type: recordDone}) == nil
			}
		case recordAck:
			if sending && !done {
				sending = send(queryRecord{Type: recordAck, From: s.n.name}) == nil
				f.count(func(st *Stats) { st.Acks++ })
			}
		case recordResponse:
			answer := f.handleQuery(s.n, q.name, q.payload, time.Now())
			switch {
			case answer == nil:
				// The handler wrote nothing: serf sends no response.
			case responseSize(q.ltime, q.id, s.n.name, answer) > QueryResponseSizeLimit:
				f.count(func(st *Stats) { st.ResponsesDropped++ })
			case done:
				f.count(func(st *Stats) { st.ResponsesLate++ })
			case sending:
				sending = send(queryRecord{Type: recordResponse, From: s.n.name, Payload: answer}) == nil
				f.count(func(st *Stats) { st.Responses++ })
			}
		}
	}
}

func (f *Fleet) count(fn func(*Stats)) {
	f.mu.Lock()
	fn(&f.stats)
	f.mu.Unlock()
}

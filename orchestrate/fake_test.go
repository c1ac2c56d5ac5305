package orchestrate

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// fakeRPC is a cluster in memory: members with tags and statuses, and a
// function per node that answers queries. It matches filters the way serf
// does with the anchored filters serfrpc sends.
type fakeRPC struct {
	mu      sync.Mutex
	members []serfrpc.Member
	answer  func(node, query string, payload []byte) []byte // nil answer: silent
	events  []firedEvent
	queries []serfrpc.Query
	polls   int
	// onPoll runs before each puppet-status query, to change the cluster
	// as time goes by.
	onPoll func(f *fakeRPC, poll int)
	// unlisted members get queries but are not in Members' list yet: the
	// gossip of their join has not reached the CLI's agent.
	unlisted map[string]bool
}

type firedEvent struct {
	name     string
	payload  []byte
	coalesce bool
}

func (f *fakeRPC) add(name, status string, tags map[string]string) {
	f.members = append(f.members, serfrpc.Member{Name: name, Addr: "127.0.0.1:1", Status: status, Tags: tags})
}

func (f *fakeRPC) setStatus(name, status string) {
	for i := range f.members {
		if f.members[i].Name == name {
			f.members[i].Status = status
		}
	}
}

func matches(m serfrpc.Member, flt serfrpc.Filter) bool {
	if len(flt.Nodes) > 0 {
		found := false
		for _, n := range flt.Nodes {
			found = found || n == m.Name
		}
		if !found {
			return false
		}
	}
	for k, re := range flt.AnchoredTags() {
		v, ok := m.Tags[k]
		if !ok || !mustMatch(re, v) {
			return false
		}
	}
	return true
}

func (f *fakeRPC) Members(_ context.Context, flt serfrpc.Filter, status string) ([]serfrpc.Member, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []serfrpc.Member
	for _, m := range f.members {
		if matches(m, flt) && (status == "" || m.Status == status) && !f.unlisted[m.Name] {
			out = append(out, m)
		}
	}
	return out, nil
}

func (f *fakeRPC) FireEvent(_ context.Context, name string, payload []byte, coalesce bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, firedEvent{name, payload, coalesce})
	return nil
}

func (f *fakeRPC) Query(ctx context.Context, q serfrpc.Query) (*serfrpc.QueryResult, error) {
	f.mu.Lock()
	f.queries = append(f.queries, q)
	if q.Name == protocol.QueryPuppetStatus {
		f.polls++
		if f.onPoll != nil {
			f.onPoll(f, f.polls)
		}
	}
	members := append([]serfrpc.Member(nil), f.members...)
	f.mu.Unlock()
	res := &serfrpc.QueryResult{}
	for _, m := range members {
		if m.Status != serfrpc.StatusAlive || !matches(m, q.Filter) {
			continue
		}
		res.Acks = append(res.Acks, m.Name)
		if b := f.answer(m.Name, q.Name, q.Payload); b != nil {
			r := serfrpc.Response{From: m.Name, Payload: b}
			res.Responses = append(res.Responses, r)
			if q.OnResponse != nil {
				q.OnResponse(r)
			}
		}
	}
	return res, ctx.Err()
}

// override answers with fn's answer where it says so, and as before
// elsewhere.
func (f *fakeRPC) override(fn func(node, query string) ([]byte, bool)) {
	inner := f.answer
	f.answer = func(n, q string, p []byte) []byte {
		if b, ok := fn(n, q); ok {
			return b
		}
		return inner(n, q, p)
	}
}

// statusJSON is a node's puppet-status answer.
func statusJSON(st protocol.Status) []byte {
	st.V = protocol.Version
	b, err := json.Marshal(st)
	if err != nil {
		panic(err)
	}
	return b
}

func intp(i int) *int { return &i }

// fakeLog is the logging service in memory.
type fakeLog struct {
	records map[string]protocol.RunRecord
	err     error
	calls   int
}

func (l *fakeLog) Latest(_ context.Context, id string, since, until time.Time) (map[string]protocol.RunRecord, error) {
	l.calls++
	if l.err != nil {
		return nil, l.err
	}
	out := map[string]protocol.RunRecord{}
	for n, r := range l.records {
		if r.DeployID == id {
			out[n] = r
		}
	}
	return out, nil
}

// fastOptions are options that make a watch take milliseconds.
func fastOptions(id string) Options {
	return Options{
		ID: id, Module: "motd", Ref: "v1", Timeout: 5 * time.Second,
		PollInterval: time.Millisecond, QueryTimeout: time.Second,
		MissedAfter: 200 * time.Millisecond, LogWait: 100 * time.Millisecond, ResendAfter: 50 * time.Millisecond,
	}
}

func mustMatch(re, v string) bool {
	ok, err := regexpMatch(re, v)
	if err != nil {
		panic(fmt.Sprintf("bad regexp %q: %v", re, err))
	}
	return ok
}

func decodeStatus(b []byte) protocol.Status {
	var st protocol.Status
	if err := json.Unmarshal(b, &st); err != nil {
		panic(err)
	}
	return st
}

// nodeStates maps each node of a result to its state.
func nodeStates(res *Result) map[string]string {
	states := map[string]string{}
	for _, n := range res.Nodes {
		states[n.Node] = n.State
	}
	return states
}

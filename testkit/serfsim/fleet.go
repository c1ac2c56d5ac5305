// Package serfsim simulates a serf agent's RPC server in front of a fleet of
// simulated members running serfdeploy's node handlers, so that the real
// serfdeploy CLI can deploy to thousands of nodes on one small machine.
//
// Only what serfdeploy's RPC client uses is served (handshake, auth,
// members, members-filtered, event, query, stream, stop), with serf
// v0.11.0's wire format, filter semantics, size limits and error texts.
// There is no gossip: the fleet delivers events and queries itself, after a
// random delay, and may lose query deliveries.
package serfsim

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"time"
)

// DoneEvent is the user event name a node fires when its run ends, when
// Config.FireDone is set.
const DoneEvent = "puppet-done"

// Config shapes a simulated fleet. Zero fields take the defaults noted.
type Config struct {
	Masters  int      // tagged role=puppetmaster; default 1
	Agents   int      // the nodes Puppet runs on
	Segments []string // agents' segment tag, round robin; default ["qa"]
	Local    string   // the member the RPC server is the agent of; default the first master
	Seed     uint64   // seeds every random draw

	RunMin, RunMax time.Duration // a run's duration; default 2s and 10s
	StartDelay     time.Duration // from accepting a run to puppet starting; default 500ms
	SyncDelay      time.Duration // a master's fetch and install; default 1s
	TimeScale      float64       // multiplies the four durations above; default 1
	FailRate       float64       // fraction of runs that fail (exit 6)

	GossipMin, GossipMax time.Duration // delivery delay of each message; default 5ms and 50ms
	LossRate             float64       // fraction of query deliveries lost

	FireDone  bool   // a node fires a user event when its run ends
	DoneEvent string // its name; default DoneEvent
}

func (c *Config) setDefaults() {
	if c.Masters == 0 {
		c.Masters = 1
	}
	if len(c.Segments) == 0 {
		c.Segments = []string{"qa"}
	}
	if c.RunMin == 0 && c.RunMax == 0 {
		c.RunMin, c.RunMax = 2*time.Second, 10*time.Second
	}
	if c.RunMax < c.RunMin {
		c.RunMax = c.RunMin
	}
	if c.StartDelay == 0 {
		c.StartDelay = 500 * time.Millisecond
	}
	if c.SyncDelay == 0 {
		c.SyncDelay = time.Second
	}
	if c.TimeScale <= 0 {
		c.TimeScale = 1
	}
	if c.GossipMin == 0 && c.GossipMax == 0 {
		c.GossipMin, c.GossipMax = 5*time.Millisecond, 50*time.Millisecond
	}
	if c.GossipMax < c.GossipMin {
		c.GossipMax = c.GossipMin
	}
	if c.DoneEvent == "" {
		c.DoneEvent = DoneEvent
	}
}

// UserEvent is a user event as a stream subscriber receives it.
type UserEvent struct {
	LTime    uint64
	Name     string
	Payload  []byte
	Coalesce bool
}

// Stats counts what went through the simulated agent.
type Stats struct {
	Events           int            // user events fired through RPC and accepted
	EventsRefused    int            // refused for their size
	Queries          int            // queries accepted
	QueriesRefused   int            // refused (size over QuerySizeLimit, or a bad filter)
	QueriesByName    map[string]int // accepted queries by name
	LargestQuery     int            // largest encoded query message seen, bytes
	Acks             int            // acks streamed back
	Responses        int            // responses streamed back
	ResponsesDropped int            // over QueryResponseSizeLimit, not sent (serf only logs them)
	ResponsesLate    int            // arrived after the query's deadline
	DeliveriesLost   int            // query deliveries dropped by LossRate
	NodeEvents       int            // user events the nodes fired (FireDone)
	NodeEventsFailed int            // ... that serf would have refused for their size
	Unsupported      []string       // RPC commands the simulator does not serve (the client was cut off)
}

// Fleet is the simulated cluster. Its methods are safe for concurrent use.
type Fleet struct {
	cfg    Config
	nodes  []*node
	byName map[string]*node
	local  *node
	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex // guards everything below and every node's state
	rng        *rand.Rand
	eventClock uint64
	queryClock uint64
	subs       map[int]func(UserEvent)
	nextSub    int
	stats      Stats
}

// NewFleet builds the members. Close stops its timers.
func NewFleet(cfg Config) *Fleet {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	f := &Fleet{
		cfg: cfg, byName: map[string]*node{}, ctx: ctx, cancel: cancel,
		rng:  rand.New(rand.NewPCG(cfg.Seed, 0x5e4f)),
		subs: map[int]func(UserEvent){},
	}
	f.stats.QueriesByName = map[string]int{}
	add := func(name string, master bool, tags map[string]string) {
		i := len(f.nodes)
		n := &node{
			name: name, master: master, tags: tags,
			addr: net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)).To4(),
			runs: map[string]*runRec{}, syncs: map[string]*syncRec{},
		}
		f.nodes = append(f.nodes, n)
		f.byName[name] = n
	}
	for i := 1; i <= cfg.Masters; i++ {
		name := fmt.Sprintf("master-%02d", i)
		add(name, true, map[string]string{"role": "puppetmaster", "fqdn": name + ".example.net"})
	}
	for i := 1; i <= cfg.Agents; i++ {
		name := fmt.Sprintf("agent-%04d", i)
		seg := cfg.Segments[(i-1)%len(cfg.Segments)]
		add(name, false, map[string]string{"role": "agent", "segment": seg, "fqdn": name + ".example.net"})
	}
	f.local = f.byName[cfg.Local]
	if f.local == nil {
		f.local = f.nodes[0]
	}
	return f
}

// Close stops delivering anything.
func (f *Fleet) Close() { f.cancel() }

// LocalName is the name of the member whose agent the RPC server is.
func (f *Fleet) LocalName() string { return f.local.name }

// Stats returns a copy of the counters.
func (f *Fleet) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	s.QueriesByName = make(map[string]int, len(f.stats.QueriesByName))
	for k, v := range f.stats.QueriesByName {
		s.QueriesByName[k] = v
	}
	s.Unsupported = append([]string(nil), f.stats.Unsupported...)
	return s
}

// agentStats is the RPC `stats` answer, as (*agent.Agent).Stats shapes it;
// serfdeploy reads the agent's name from it.
func (f *Fleet) agentStats() map[string]map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return map[string]map[string]string{
		"agent": {"name": f.local.name},
		"serf": {
			"members": fmt.Sprint(len(f.nodes)), "failed": "0", "left": "0", "health_score": "0",
			"event_time": fmt.Sprint(f.eventClock), "query_time": fmt.Sprint(f.queryClock), "encrypted": "false",
		},
		"tags":           f.local.tags,
		"runtime":        {"os": runtime.GOOS, "arch": runtime.GOARCH, "version": runtime.Version()},
		"event_handlers": {},
	}
}

// Agents returns the names of the members that are not masters.
func (f *Fleet) Agents() []string {
	var out []string
	for _, n := range f.nodes {
		if !n.master {
			out = append(out, n.name)
		}
	}
	return out
}

// Subscribe calls fn, which must not block, with every user event the local
// agent receives, until the returned cancel is called.
func (f *Fleet) Subscribe(fn func(UserEvent)) (cancel func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.nextSub
	f.nextSub++
	f.subs[id] = fn
	return func() {
		f.mu.Lock()
		delete(f.subs, id)
		f.mu.Unlock()
	}
}

// FireEvent is the RPC `event` command: a user event from the local agent to
// the cluster, refused like serf refuses one over its size limit.
func (f *Fleet) FireEvent(name string, payload []byte, coalesce bool) error {
	f.mu.Lock()
	if err := checkUserEvent(f.eventClock, name, payload, coalesce); err != nil {
		f.stats.EventsRefused++
		f.mu.Unlock()
		return err
	}
	f.stats.Events++
	ev := UserEvent{LTime: f.eventClock, Name: name, Payload: payload, Coalesce: coalesce}
	f.eventClock++
	f.mu.Unlock()

	// Serf handles its own event at once; the others get it by gossip.
	f.publish(ev)
	for _, n := range f.nodes {
		if !n.wantsEvent(ev.Name) {
			continue
		}
		n := n
		f.after(f.delay(n), func() { f.handleEvent(n, ev) })
	}
	return nil
}

// fireFrom is a user event fired by node n (not through RPC); only the local
// agent's stream subscribers can see it, after a gossip delay.
func (f *Fleet) fireFrom(n *node, name string, payload []byte) {
	f.mu.Lock()
	f.stats.NodeEvents++
	if checkUserEvent(f.eventClock, name, payload, false) != nil {
		f.stats.NodeEventsFailed++
		f.mu.Unlock()
		return
	}
	ev := UserEvent{LTime: f.eventClock, Name: name, Payload: payload}
	f.eventClock++
	f.mu.Unlock()
	f.after(f.delay(n), func() { f.publish(ev) })
}

func (f *Fleet) publish(ev UserEvent) {
	f.mu.Lock()
	subs := make([]func(UserEvent), 0, len(f.subs))
	for _, fn := range f.subs {
		subs = append(subs, fn)
	}
	f.mu.Unlock()
	for _, fn := range subs {
		fn(ev)
	}
}

// after runs fn after d unless the fleet is closed first.
func (f *Fleet) after(d time.Duration, fn func()) {
	time.AfterFunc(d, func() {
		if f.ctx.Err() == nil {
			fn()
		}
	})
}

// delay is one message's gossip delay to or from n; the local member talks
// to itself at once.
func (f *Fleet) delay(n *node) time.Duration {
	if n == f.local {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gossipLocked()
}

func (f *Fleet) gossipLocked() time.Duration {
	span := f.cfg.GossipMax - f.cfg.GossipMin
	if span <= 0 {
		return f.cfg.GossipMin
	}
	return f.cfg.GossipMin + time.Duration(f.rng.Int64N(int64(span)+1))
}

func (f *Fleet) scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) * f.cfg.TimeScale)
}

// nodeRand is the random source of one node's run of one deploy, so that a
// node's duration and outcome depend on the seed alone, not on the order in
// which things happened.
func (f *Fleet) nodeRand(n *node, id string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(n.name + "\x00" + id))
	return rand.New(rand.NewPCG(f.cfg.Seed, h.Sum64()))
}

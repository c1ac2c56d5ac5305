package serfsim

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// This file is the emulation of serfdeploy's node handlers (handler/deploy.go,
// sync.go, puppetrun.go, status.go): what a master does with the deploy
// event and what a node answers to puppetrun and puppet-status. Requests are
// decoded and answers built with the protocol package, so that a new field
// there is filled here in one place (fillRun, fillSync, runRequest,
// requestOf).

const (
	statusAlive = "alive"
	memberPort  = 7946
	roleMaster  = "master" // handler.RoleMaster
	roleAgent   = "agent"
	environment = "production" // the nodes' configured environment
)

// node is one simulated member and its serfdeploy state.
type node struct {
	name   string
	master bool
	tags   map[string]string
	addr   net.IP

	// Guarded by Fleet.mu.
	runs   map[string]*runRec  // by deploy id
	syncs  map[string]*syncRec // masters: by deploy id
	active *runRec             // the run that holds puppet's lock, if any
}

func (n *node) status() string { return statusAlive }

func (n *node) role() string {
	if n.master {
		return roleMaster
	}
	return roleAgent
}

// wantsEvent: only masters act on a user event (the deploy); delivering the
// others to every node would change nothing.
func (n *node) wantsEvent(name string) bool { return n.master && name == protocol.EventDeploy }

// runRec is a node's run for one deploy id, decided when it is accepted:
// its phase at any time follows from its times.
type runRec struct {
	req     protocol.RunRequest
	created time.Time
	start   time.Time // puppet starts
	end     time.Time // puppet ends
	final   string    // phase once ended
	reason  string
	message string
	exit    int
	changed int
	failed  int
	total   int
}

func (r *runRec) phase(now time.Time) string {
	switch {
	case now.Before(r.start):
		return protocol.PhasePending
	case now.Before(r.end):
		return protocol.PhaseRunning
	}
	return r.final
}

// syncRec is a master's code sync for one deploy.
type syncRec struct {
	deploy  protocol.Deploy
	phase   string
	message string
	commit  string
	reached int // nodes that answered the trigger
}

// handleEvent is handler/deploy.go on a master: check the payload, drop a
// repeat, sync, then trigger puppetrun at the deploy's targets.
func (f *Fleet) handleEvent(n *node, ev UserEvent) {
	var d protocol.Deploy
	if protocol.DecodeStrict(ev.Payload, &d) != nil || d.Validate() != nil {
		return // the real handler logs it and does nothing
	}
	if d.Environment == "" {
		d.Environment = environment
	}
	f.mu.Lock()
	if _, dup := n.syncs[d.ID]; dup {
		f.mu.Unlock()
		return
	}
	s := &syncRec{deploy: d, phase: protocol.PhaseSyncing}
	n.syncs[d.ID] = s
	f.mu.Unlock()

	f.after(f.scale(f.cfg.SyncDelay), func() {
		f.mu.Lock()
		s.commit = commitOf(d.Module, d.Ref)
		s.phase = protocol.PhaseSynced
		s.message = fmt.Sprintf("installed %s at %s (%s)", d.Module, d.Ref, s.commit[:12])
		f.mu.Unlock()
		f.after(f.delay(n), func() { f.trigger(n, s) })
	})
}

// trigger is the master's puppetrun at the targets (handler/sync.go trigger):
// the alive members its filter matches, anchored as serfrpc anchors it. The
// query's gossip is not simulated: the targets take the run at once.
func (f *Fleet) trigger(master *node, s *syncRec) {
	filter := serfrpc.Filter{Tags: s.deploy.Tags, Nodes: s.deploy.Nodes}
	mf, err := newMemberFilter(filter.AnchoredTags(), statusAlive, "")
	now := time.Now()
	counts := map[string]int{}
	reached := 0
	if err == nil {
		req := runRequest(&s.deploy)
		for _, n := range f.nodes {
			if mf.match(n) && (len(filter.Nodes) == 0 || slices.Contains(filter.Nodes, n.name)) {
				a := f.startRun(n, req, now)
				counts[a.Result]++
				if a.Result != protocol.RunSkipped {
					reached++ // as handler/sync.go counts it
				}
			}
		}
	}
	var parts []string
	for _, k := range []string{protocol.RunStarted, protocol.RunAlready, protocol.RunBusy, protocol.RunSkipped} {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s.phase, s.message, s.reached = protocol.PhaseTriggered, strings.Join(parts, ", "), reached
	if len(parts) == 0 {
		s.message = "no alive node matched " + filter.String()
	}
}

// runRequest is the puppetrun payload a master builds from a deploy.
func runRequest(d *protocol.Deploy) protocol.RunRequest {
	return protocol.RunRequest{
		ID: d.ID, Environment: d.Environment, Module: d.Module, Ref: d.Ref,
		SkipMasters: d.SkipMasters, Build: d.Build,
	}
}

// startRun is handler/puppetrun.go: take the run (once per id), or say why
// not. The run's duration and outcome are drawn from the node's seeded RNG.
func (f *Fleet) startRun(n *node, req protocol.RunRequest, now time.Time) protocol.RunAnswer {
	if req.Environment == "" {
		req.Environment = environment
	}
	a := protocol.RunAnswer{V: protocol.Version, Node: n.name}
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := n.runs[req.ID]; ok {
		a.Result, a.Message, a.Request = protocol.RunAlready, old.phase(now), requestOf(old.req)
		return a
	}
	r := &runRec{req: req, created: now, start: now, end: now}
	n.runs[req.ID] = r
	switch {
	case req.SkipMasters && n.master:
		r.final, r.message = protocol.PhaseSkipped, "masters were not targeted"
		a.Result, a.Message = protocol.RunSkipped, r.message
		return a
	case n.active != nil && now.Before(n.active.end):
		r.final, r.reason = protocol.PhaseBusy, protocol.ReasonLocked
		r.message = fmt.Sprintf("run %s was in progress; this one was not started", n.active.req.ID)
		a.Result, a.Running, a.Message = protocol.RunBusy, n.active.req.ID, r.message
		return a
	}
	rng := f.nodeRand(n, req.ID)
	dur := f.cfg.RunMin
	if span := f.cfg.RunMax - f.cfg.RunMin; span > 0 {
		dur += time.Duration(rng.Int64N(int64(span) + 1))
	}
	r.start = now.Add(f.scale(f.cfg.StartDelay))
	r.end = r.start.Add(f.scale(dur))
	r.total = 20 + rng.IntN(180)
	if rng.Float64() < f.cfg.FailRate {
		r.final, r.reason, r.exit = protocol.PhaseFailed, protocol.ReasonResourcesFailed, 6
		r.failed, r.changed = 1+rng.IntN(3), rng.IntN(5)
		r.message = fmt.Sprintf("%d resource(s) failed", r.failed)
	} else {
		r.final, r.changed = protocol.PhaseFinished, rng.IntN(4)
		if r.changed > 0 {
			r.exit = 2 // --detailed-exitcodes: changes applied
		}
	}
	n.active = r
	if f.cfg.FireDone {
		f.after(r.end.Sub(now), func() { f.fireDone(n, req.ID) })
	}
	a.Result = protocol.RunStarted
	return a
}

// fireDone fires the completion event of a run, with the node's status for
// the run as its payload.
func (f *Fleet) fireDone(n *node, id string) {
	b, err := f.statusAnswer(n, protocol.StatusRequest{ID: id}, time.Now())
	if err != nil {
		return
	}
	f.fireFrom(n, f.cfg.DoneEvent, b)
}

// handleQuery is a node's answer to a query, nil when it has none (a query
// with no handler: serf then sends no response).
func (f *Fleet) handleQuery(n *node, name string, payload []byte, now time.Time) []byte {
	var b []byte
	var err error
	switch name {
	case protocol.QueryPuppetRun:
		var req protocol.RunRequest
		a := protocol.RunAnswer{V: protocol.Version, Node: n.name}
		if err := protocol.DecodeStrict(payload, &req); err != nil {
			a.Result, a.Message = protocol.RunRejected, err.Error()
		} else if err := req.Validate(); err != nil {
			a.Result, a.Message = protocol.RunRejected, err.Error()
		} else {
			a = f.startRun(n, req, now)
		}
		b, err = protocol.EncodeAnswer(n.name, &a, &a.Message)
	case protocol.QueryPuppetStatus:
		var req protocol.StatusRequest
		if len(payload) > 0 {
			err = protocol.DecodeStrict(payload, &req)
		}
		if err == nil && req.ID != "" {
			err = protocol.ValidID(req.ID)
		}
		if err != nil {
			st := protocol.Status{V: protocol.Version, Node: n.name, Role: n.role(), Phase: protocol.PhaseUnknown, Message: "bad request: " + err.Error()}
			b, err = protocol.EncodeAnswer(n.name, &st, &st.Message)
		} else if b, err = f.statusAnswer(n, req, now); err == nil && b == nil {
			return nil
		}
	default:
		return nil
	}
	if err != nil {
		return []byte(err.Error()) // what serf would send back: the handler's stderr
	}
	return b
}

// statusAnswer is handler/status.go: the node's phase for one id, or with no
// id its state now and its last run. Nil when the request asks only nodes
// that know the id, and this one does not.
func (f *Fleet) statusAnswer(n *node, req protocol.StatusRequest, now time.Time) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := protocol.Status{V: protocol.Version, Node: n.name, Role: n.role(), Phase: protocol.PhaseUnknown}
	if a := n.active; a != nil && now.Before(a.end) {
		st.Running = a.req.ID
	}
	if req.ID == "" {
		st.Phase = "idle"
		if st.Running != "" {
			st.Phase = protocol.PhaseRunning
		}
		if last := n.lastRun(); last != nil {
			st.Last = &protocol.Status{ID: last.req.ID}
			fillRun(st.Last, last, now)
		}
	} else {
		st.ID = req.ID
		r, known := n.runs[req.ID]
		if known {
			fillRun(&st, r, now)
		}
		if n.master {
			st.Sync = protocol.PhaseUnknown
			if s, ok := n.syncs[req.ID]; ok {
				fillSync(&st, s)
				known = true
			}
		}
		if req.Known && !known {
			return nil, nil // no record: the node stays silent
		}
	}
	msgs := []*string{&st.Message, &st.SyncMsg}
	if st.Last != nil {
		msgs = append(msgs, &st.Last.Message)
	}
	return protocol.EncodeAnswer(n.name, &st, msgs...)
}

// fillRun is handler/status.go fillRun for a simulated run.
func fillRun(st *protocol.Status, r *runRec, now time.Time) {
	st.Phase, st.Request = r.phase(now), requestOf(r.req)
	if !protocol.Done(st.Phase) {
		if st.Phase == protocol.PhaseRunning {
			st.Started = r.start.Unix()
		}
		return
	}
	st.Reason, st.Message = r.reason, r.message
	if st.Phase == protocol.PhaseFinished || st.Phase == protocol.PhaseFailed {
		exit := r.exit
		st.Exit = &exit
		st.Changed, st.Failed, st.Total = r.changed, r.failed, r.total
		st.Started = r.start.Unix()
		st.Duration = r.end.Sub(r.start).Round(10 * time.Millisecond).Seconds()
		if r.req.Module != "" {
			st.Applied = protocol.FormatCodeVersion(map[string]string{r.req.Module: commitOf(r.req.Module, r.req.Ref)})
		}
	}
	st.Finished = r.end.Unix()
}

func fillSync(st *protocol.Status, s *syncRec) {
	st.Sync, st.SyncMsg, st.Commit, st.Reached = s.phase, s.message, s.commit, s.reached
	st.Request = protocol.Request{Module: s.deploy.Module, Ref: s.deploy.Ref, Environment: s.deploy.Environment}
}

// requestOf is what a run record was made for (handler Record.request).
func requestOf(r protocol.RunRequest) protocol.Request {
	return protocol.Request{Module: r.Module, Ref: r.Ref, Environment: r.Environment}
}

// commitOf is the commit a master installs for a module at a ref, and the
// code version (Puppet's config_version) a run of it applies.
func commitOf(module, ref string) string {
	sum := sha1.Sum([]byte(module + "@" + ref))
	return hex.EncodeToString(sum[:])
}

func (n *node) lastRun() *runRec {
	var last *runRec
	for _, r := range n.runs {
		if last == nil || r.created.After(last.created) {
			last = r
		}
	}
	return last
}

// RunOutcome is how a node's run of one deploy ends (or will end).
type RunOutcome struct {
	Node  string
	Phase string    // the final phase: finished, failed, skipped or busy
	Exit  int       // puppet's exit code, for finished and failed
	End   time.Time // when puppet ends (or ended)
}

// Runs lists the runs of deploy id on every node, by node name.
func (f *Fleet) Runs(id string) []RunOutcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []RunOutcome
	for _, n := range f.nodes {
		if r, ok := n.runs[id]; ok {
			out = append(out, RunOutcome{Node: n.name, Phase: r.final, Exit: r.exit, End: r.end})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// WaitTriggered waits until every master has received deploy id and fired
// its puppetrun, so that Runs lists every run the deploy will have.
func (f *Fleet) WaitTriggered(ctx context.Context, id string) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		f.mu.Lock()
		pending := false
		for _, n := range f.nodes {
			if s, ok := n.syncs[id]; n.master && (!ok || s.phase != protocol.PhaseTriggered) {
				pending = true
			}
		}
		f.mu.Unlock()
		if !pending {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Deploys lists the deploy ids the masters have received.
func (f *Fleet) Deploys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, n := range f.nodes {
		for id := range n.syncs {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	sort.Strings(out)
	return out
}

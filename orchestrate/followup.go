package orchestrate

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

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

// discoverEvery paces the search for nodes the trigger reached while a
// master counts more of them than the CLI has heard from; discoverWait is
// how long one search listens.
const (
	discoverEvery = 5 * time.Second
	discoverWait  = 1500 * time.Millisecond
)

// discover asks every node the deploy's filter matches whether it has a
// record of this id; nodes without one stay silent. A node that joined
// just before the deploy is reached by the master's trigger although the
// CLI's agent did not list it: it is found here and followed. It runs only
// while a master's trigger reached more nodes than the CLI has heard from:
// at once when that is more than the CLI listed, else after a pause (the
// listed ones may simply not have answered yet), and with final set, once
// more before the watch ends.
func (w *watch) discover(ctx context.Context, final bool) error {
	if final {
		if err := w.askJoined(ctx); err != nil {
			return err
		}
	}
	reached := w.reached()
	if w.triggeredAt.IsZero() || reached <= len(w.heard) {
		return nil
	}
	switch {
	case final:
	case w.lastDiscovery.IsZero() && reached > len(w.targets):
	case time.Since(w.lastDiscovery) >= discoverEvery && time.Since(w.triggeredAt) >= discoverEvery:
	default:
		return nil
	}
	w.lastDiscovery = time.Now()
	return w.queryStatus(ctx, knownQuery(w.opts.ID, w.opts.Filter, nil), func(from string) bool {
		_, isMaster := w.masters[from]
		return !isMaster
	})
}

// reached is the most nodes any master's trigger reached; listed, the
// most alive targets any master's trigger was sent to; expected, how many
// targets the CLI listed, as the masters (a deploy) or the targets (a
// run) recorded it; 0 from nodes older than that field.
func (w *watch) reached() int { return w.mostOfMasters(func(m *MasterResult) int { return m.Reached }) }
func (w *watch) listed() int  { return w.mostOfMasters(func(m *MasterResult) int { return m.Listed }) }
func (w *watch) expected() int {
	return max(w.runTargets, w.mostOfMasters(func(m *MasterResult) int { return m.Targets }))
}

func (w *watch) mostOfMasters(figure func(*MasterResult) int) int {
	n := 0
	for _, m := range w.masters {
		n = max(n, figure(m))
	}
	return n
}

// logCheckEvery paces reading the logging service for runs the polls have
// not seen finish (a node whose answers are lost, e.g. too large for serf).
const logCheckEvery = 10 * time.Second

// settleFromLog takes a finished record in the logging service as the
// result of a target the polls still see unfinished.
func (w *watch) settleFromLog(ctx context.Context, force bool) {
	if w.opts.Log == nil || (!force && time.Since(w.lastLogCheck) < logCheckEvery) {
		return
	}
	var open []*NodeResult
	for _, name := range w.order {
		if t := w.targets[name]; !Final(t.State) {
			open = append(open, t)
		}
	}
	if len(open) == 0 {
		return
	}
	w.lastLogCheck = time.Now()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	records, err := w.opts.Log.Latest(ctx, w.opts.ID, w.res.Started.Add(-5*time.Minute), time.Now().Add(time.Minute))
	if err != nil {
		w.observer.note(fmt.Sprintf("reading the logging service for unfinished nodes: %v", err))
		return
	}
	for _, t := range open {
		rec, ok := records[t.Node]
		if !ok || rec.Event != "finished" || recordRequest(rec).Conflicts(w.request()) {
			continue
		}
		w.heard[t.Node] = true
		w.applyFinal(t, rec)
		state := t.State
		t.State = "" // report the change
		w.set(t, state, t.Reason, t.Message+" (from the logging service; the node's answers did not say)")
	}
}

// applyFinal takes a finished record from the logging service as t's
// result, stale when it applied other code than this deploy's.
func (w *watch) applyFinal(t *NodeResult, rec protocol.RunRecord) {
	applyRecord(t, rec)
	if t.State == StateFinished {
		if stale := w.staleDetail(t.ConfigVersion); stale != "" {
			t.State, t.Reason, t.Message = StateStale, "stale", stale
		}
	}
}

// staleDetail says why a run that finished applied other code than this
// deploy's, or "" when it did not (or it cannot be told: the environment
// has no config_version of serfdeploy's).
func (w *watch) staleDetail(applied string) string {
	if w.opts.ExpectVersion != "" {
		return versionMismatch(applied, w.opts.ExpectVersion)
	}
	if w.opts.Module == "" || applied == "" {
		return ""
	}
	got, ok := protocol.ParseCodeVersion(applied)[w.opts.Module]
	if !ok {
		return ""
	}
	want := ""
	for _, m := range w.masters {
		if m.Commit != "" {
			want = m.Commit
		}
	}
	if want == "" || sameCommit(got, want) {
		return ""
	}
	return fmt.Sprintf("applied %s at %s, not this deploy's %s: another deploy of the module replaced it", w.opts.Module, short(got), short(want))
}

// versionMismatch says how the code a run applied differs from
// --expect-version, or "" when it matches: every module=commit expected is
// applied (commits may be abbreviated), or the whole version is equal.
func versionMismatch(applied, expected string) string {
	want := protocol.ParseCodeVersion(expected)
	if len(want) == 0 {
		if applied == expected {
			return ""
		}
		return fmt.Sprintf("applied code version %q, not the expected %q", protocol.OneLine(applied, 200), protocol.OneLine(expected, 200))
	}
	got := protocol.ParseCodeVersion(applied)
	for _, m := range slices.Sorted(maps.Keys(want)) {
		if c := want[m]; !sameCommit(got[m], c) {
			if got[m] == "" {
				return fmt.Sprintf("applied no serfdeploy version of %s, not the expected %s", m, short(c))
			}
			return fmt.Sprintf("applied %s at %s, not the expected %s", m, short(got[m]), short(c))
		}
	}
	return ""
}

func sameCommit(a, b string) bool {
	return a != "" && b != "" && (strings.HasPrefix(a, b) || strings.HasPrefix(b, a))
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// idCheckPatience: how long checkID waits for nodes that did not
// acknowledge its query (see serfrpc.Query.Patience).
const idCheckPatience = 300 * time.Millisecond

// checkID makes sure an id the user chose names this request only. An id
// used before for another module, ref or environment is refused before
// anything is sent: its records would otherwise pass for this deploy's
// results. The same id for the same request re-attaches: nodes run each
// id once, and the watch follows the runs already under way.
func checkID(ctx context.Context, rpc RPC, opts *Options) error {
	if !opts.IDGiven {
		return nil // a generated id is new
	}
	want := opts.request()
	var conflict error
	known := 0
	// Every alive node is asked and answers (most "unknown"), so that the
	// check ends as soon as all have, not after a silent wait: it is on
	// the way to every run of a deploy with --id. A node the gossip missed
	// gets idCheckPatience: the check refuses early, and the watch never
	// counts an answer of another request anyway. Not a shorter timeout:
	// with a 1 s one, at 150 agents, the query ended while answers were
	// still arriving and the CLI's serf agent went away (once, bench/fleet).
	alive, err := rpc.Members(ctx, serfrpc.Filter{}, serfrpc.StatusAlive)
	if err != nil {
		return interruptedOr(ctx, err, "checking the deploy id")
	}
	payload, _ := json.Marshal(protocol.StatusRequest{ID: opts.ID})
	_, err = rpc.Query(ctx, serfrpc.Query{
		Name: protocol.QueryPuppetStatus, Payload: payload, Filter: serfrpc.Filter{Nodes: names(alive)},
		Timeout: opts.QueryTimeout, Expect: names(alive), Patience: idCheckPatience,
		OnResponse: func(r serfrpc.Response) {
			var st protocol.Status
			if protocol.DecodeAnswerFrom(r.Payload, r.From, &st) != nil {
				return
			}
			if st.Phase == protocol.PhaseUnknown && (st.Sync == "" || st.Sync == protocol.PhaseUnknown) {
				return
			}
			known++
			if conflict == nil && st.Request.Conflicts(want) {
				conflict = Errorf(ExitUsage, "deploy id %s was already used on %s for a %s, not this %s; choose another --id, or leave --id out for a new one",
					opts.ID, r.From, st.Request, want)
			}
		}})
	if conflict != nil {
		return conflict
	}
	if err != nil {
		return interruptedOr(ctx, err, "checking the deploy id")
	}
	if known > 0 {
		opts.Observer.note(fmt.Sprintf("%d node(s) already have a record of %s for this %s: following those runs, not starting new ones", known, opts.ID, want))
	}
	return nil
}

// askJoined asks, before the watch ends, the alive nodes the deploy's
// filter matches now but that were not targets when it started: one that
// joined just before the master's trigger may have received and run it
// without the master counting it (its trigger ends when the nodes it
// listed have answered). Cheap: a member list, and a query only when such
// nodes exist.
func (w *watch) askJoined(ctx context.Context) error {
	if w.triggeredAt.IsZero() || w.runPayload == nil && len(w.masters) == 0 {
		return nil // a re-attached watch follows the records it found
	}
	members, err := w.rpc.Members(ctx, w.opts.Filter, serfrpc.StatusAlive)
	if err != nil {
		return w.sendError(ctx, err)
	}
	var joined []string
	for _, m := range members {
		if _, isTarget := w.targets[m.Name]; isTarget || w.otherBatches[m.Name] {
			continue
		}
		if _, isMaster := w.masters[m.Name]; isMaster && w.opts.Filter.Empty() {
			continue
		}
		joined = append(joined, m.Name)
	}
	if len(joined) == 0 {
		return nil
	}
	return w.askStatus(ctx, joined)
}

// knownQuery asks the nodes f matches for their record of id; nodes with
// none stay silent, so it costs answers only where there is something to
// say. It waits discoverWait: how many will answer is not known.
func knownQuery(id string, f serfrpc.Filter, onAnswer func(serfrpc.Response)) serfrpc.Query {
	payload, _ := json.Marshal(protocol.StatusRequest{ID: id, Known: true})
	return serfrpc.Query{Name: protocol.QueryPuppetStatus, Payload: payload, Filter: f, Timeout: discoverWait, OnResponse: onAnswer}
}

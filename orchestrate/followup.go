package orchestrate

import (
	"context"
	"encoding/json"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

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
	s := w.s
	reached := s.reached()
	if s.triggeredAt.IsZero() || reached <= len(s.heard) {
		return nil
	}
	switch {
	case final:
	case w.lastDiscovery.IsZero() && reached > len(s.targets):
	case time.Since(w.lastDiscovery) >= discoverEvery && time.Since(s.triggeredAt) >= discoverEvery:
	default:
		return nil
	}
	w.lastDiscovery = time.Now()
	return w.queryStatus(ctx, knownQuery(w.opts.ID, w.opts.Filter, nil), func(from string) bool {
		_, isMaster := s.masters[from]
		return !isMaster
	})
}

// askJoined asks, before the watch ends, the alive nodes the deploy's
// filter matches now but that were not targets when it started: one that
// joined just before the master's trigger may have received and run it
// without the master counting it (its trigger ends when the nodes it
// listed have answered). Cheap: a member list, and a query only when such
// nodes exist.
func (w *watch) askJoined(ctx context.Context) error {
	s := w.s
	if s.triggeredAt.IsZero() || !s.runSent && len(s.masters) == 0 {
		return nil // a re-attached watch follows the records it found
	}
	members, err := w.rpc.Members(ctx, w.opts.Filter, serfrpc.StatusAlive)
	if err != nil {
		return err
	}
	var joined []string
	for _, m := range members {
		if _, isTarget := s.targets[m.Name]; isTarget {
			continue
		}
		if _, isMaster := s.masters[m.Name]; isMaster && w.opts.Filter.Empty() {
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

package orchestrate

import (
	"context"
	"encoding/json"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// A node sends a notice to the CLI's own agent when its part of the
// deploy changes (a master triggered the runs, a run ended): the CLI asks
// that node at once instead of at its next poll, so the end of the last
// run is seen within a gossip round and a poll's round trip. Polling stays
// the safety net: a notice can be lost, and older nodes send none.

// listen starts streaming notices; without them the watch only polls.
func (w *watch) listen(ctx context.Context) {
	if w.opts.notify == "" {
		return
	}
	ch, err := w.rpc.Listen(ctx, protocol.QueryNotify)
	if err != nil {
		w.observer.note("the serf agent does not stream notices; polling only")
		w.opts.notify = ""
		return
	}
	w.notices = ch
}

// noticeBatch is how long the watch gathers notices that arrive together
// (a fleet finishing at once) into one poll.
const noticeBatch = 20 * time.Millisecond

// wait sleeps until the next poll, or until notices arrive; it returns the
// nodes they name (nil: a regular poll of every pending node).
func (w *watch) wait(ctx context.Context) []string {
	timer := time.NewTimer(w.interval())
	defer timer.Stop()
	var noticed []string
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			return noticed
		case r, ok := <-w.notices:
			if !ok {
				w.notices = nil
				continue
			}
			var n protocol.Notice
			if json.Unmarshal(r.Payload, &n) != nil || n.ID != w.opts.ID {
				continue
			}
			w.noticesSeen = true
			w.res.Notices++
			if noticed == nil {
				timer.Reset(noticeBatch)
			}
			noticed = append(noticed, n.Node)
		}
	}
}

// stillPending keeps the noticed nodes that the watch still asks about.
func (w *watch) stillPending(noticed []string) []string {
	pending := map[string]bool{}
	for _, n := range w.pendingNodes() {
		pending[n] = true
	}
	var out []string
	seen := map[string]bool{}
	for _, n := range noticed {
		if pending[n] && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

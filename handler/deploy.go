package handler

import (
	"errors"
	"io"
	"os"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// handleDeploy takes the `deploy` user event on a master: check the payload,
// drop a duplicate delivery, and hand the sync to a worker.
func (n *Node) handleDeploy(stdin io.Reader) error {
	if !n.isMaster() {
		return nil // the event reaches every node; only masters sync code
	}
	b, err := readPayload(stdin, protocol.MaxEventPayload)
	if err != nil {
		n.log.Printf("deploy event rejected: %v", err)
		return nil
	}
	var d protocol.Deploy
	if err := protocol.DecodeStrict(b, &d); err != nil {
		n.log.Printf("deploy event rejected: %v: %q", err, protocol.Truncate(string(b), 200))
		return nil
	}
	if err := d.Validate(); err != nil {
		// Never passed on to git or a shell; noted where an operator looks.
		n.log.Printf("deploy event rejected: %v", err)
		return nil
	}
	unlock, err := n.st.lock()
	if err != nil {
		n.log.Printf("deploy %s: %v", d.ID, err)
		return err
	}
	defer unlock()
	// Serf may deliver an event twice, and replays old ones after a
	// rejoin: a deploy id is handled once, also after its record was
	// pruned (handled.go).
	if seen, err := n.st.handled(d.ID); err != nil {
		n.log.Printf("deploy %s: reading the handled deploys: %v", d.ID, err)
		return err
	} else if seen {
		n.log.Printf("deploy %s: already handled, ignoring the repeat", d.ID)
		return nil
	}
	rec := n.newRecord(d.ID, KindSync, protocol.PhaseSyncing, d.Request(), d.Build)
	d.Environment = rec.Environment // the worker syncs into the node's own when the event names none
	rec.Deploy = &d
	if err := n.st.create(rec); err != nil {
		if errors.Is(err, os.ErrExist) {
			n.log.Printf("deploy %s: already handled, ignoring the repeat", d.ID)
			return nil
		}
		// A full or read-only disk: the status answer names it (state.read).
		n.log.Printf("deploy %s: recording it: %v", d.ID, err)
		return err
	}
	if err := n.st.rememberHandled(d.ID); err != nil {
		// Not synced: a replay could not be told from a new deploy.
		rec.Phase, rec.Reason, rec.Finished = protocol.PhaseFailed, protocol.ReasonStateError, time.Now()
		rec.Message = "could not note the deploy as handled: " + err.Error()
		n.log.Printf("deploy %s: %s", d.ID, rec.Message)
		return n.st.save(rec)
	}
	n.log.Printf("deploy %s: syncing module %s at %s into %s", d.ID, d.Module, d.Ref, d.Environment)
	pid, err := n.worker(WorkSync, d.ID)
	if err != nil {
		rec.Phase, rec.Reason, rec.Message = protocol.PhaseFailed, protocol.ReasonSyncFailed, err.Error()
		return n.st.save(rec)
	}
	rec.setWorker(pid)
	return n.st.save(rec)
}

package handler

import (
	"errors"
	"io"
	"os"

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
		return err
	}
	defer unlock()
	rec := n.newRecord(d.ID, KindSync, protocol.PhaseSyncing, d.Request(), d.Build)
	d.Environment = rec.Environment // the worker syncs into the node's own when the event names none
	rec.Deploy = &d
	if err := n.st.create(rec); err != nil {
		if errors.Is(err, os.ErrExist) {
			// Serf may deliver an event twice, and replays old ones after
			// a rejoin: a deploy id is handled once.
			n.log.Printf("deploy %s: already handled, ignoring the repeat", d.ID)
			return nil
		}
		return err
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

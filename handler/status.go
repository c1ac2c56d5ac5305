package handler

import (
	"errors"
	"io"
	"os"

	"github.com/serfdeploy/serfdeploy/logclient"
	"github.com/serfdeploy/serfdeploy/protocol"
)

// handleStatus answers `puppet-status`: this node's state for one deploy id,
// or its state now (what runs, and how the last run ended).
func (n *Node) handleStatus(stdin io.Reader, stdout io.Writer) error {
	st := protocol.Status{V: protocol.Version, Node: n.name, Role: n.role, Phase: protocol.PhaseUnknown}
	b, err := readPayload(stdin, protocol.MaxQueryResponse)
	var req protocol.StatusRequest
	if err == nil && len(b) > 0 {
		err = protocol.DecodeStrict(b, &req)
	}
	if err == nil && req.ID != "" {
		err = protocol.ValidID(req.ID)
	}
	if err != nil {
		n.log.Printf("puppet-status rejected: %v", err)
		st.Phase, st.Message = protocol.PhaseUnknown, "bad request: "+err.Error()
		return n.writeStatus(stdout, &st)
	}
	if req.Select != "" {
		return n.answerSelect(stdout, &st, &req) // select.go
	}

	st.Running = n.st.active()
	if req.ID == "" {
		last, _ := n.st.latest(KindRun)
		if last != nil {
			last = n.st.reconcile(last, n.recoverRun)
			st.Last = &protocol.Status{ID: last.ID}
			fillRun(st.Last, last)
		}
		if st.Running != "" {
			st.Phase = protocol.PhaseRunning
		} else {
			st.Phase = "idle"
		}
		st.LogSetAside, _ = logclient.Spool{Dir: n.st.spoolDir()}.Rejected()
		if msg, disabled := puppetDisabled(n.cfg.Puppet.StateDir); disabled {
			st.Disabled = msg
		}
		st.Puppet = n.puppetState(last)
		if err := n.stateProblem(); err != nil {
			st.Reason, st.Message = protocol.ReasonStateError, err.Error()
		}
		return n.writeStatus(stdout, &st)
	}

	// A record that cannot be read is answered as a failure that names the
	// file, never as "no record": that would pass for a node the request
	// never reached, and a retry of the id would wait on it in vain.
	st.ID = req.ID
	known := false
	var claim *claimError
	if rec, err := n.st.read(req.ID, KindRun); err == nil {
		fillRun(&st, n.st.reconcile(rec, n.recoverRun))
		known = true
	} else if errors.As(err, &claim) {
		// Not final: the CLI sends the request again, which takes the
		// claim over.
		st.Message = claim.Error()
		known = true
	} else if !errors.Is(err, os.ErrNotExist) {
		st.Phase, st.Reason, st.Message = protocol.PhaseFailed, protocol.ReasonStateError, err.Error()
		known = true
	}
	if n.isMaster() {
		st.Sync = protocol.PhaseUnknown
		if rec, err := n.st.read(req.ID, KindSync); err == nil {
			known = true
			rec = n.st.reconcile(rec, n.recoverRun)
			st.Sync, st.SyncMsg, st.Commit, st.Reached, st.Listed = rec.Phase, rec.Message, rec.Commit, rec.Reached, rec.Listed
			st.SyncReason = rec.Reason
			if rec.Deploy != nil {
				st.Targets, st.Batched = rec.Deploy.Targets, rec.Deploy.SyncOnly
			}
			st.Request = rec.request()
		} else if errors.As(err, &claim) {
			st.SyncMsg = claim.Error()
			known = true
		} else if !errors.Is(err, os.ErrNotExist) {
			st.Sync, st.SyncReason, st.SyncMsg = protocol.PhaseFailed, protocol.ReasonStateError, err.Error()
			known = true
		}
	}
	if req.Known && !known {
		return nil // serf sends no answer for a handler that writes nothing
	}
	// No record, and none can be made here (a full or read-only disk):
	// the request cannot have run, and will not; say why.
	if st.Phase == protocol.PhaseUnknown || st.Sync == protocol.PhaseUnknown {
		if err := n.stateProblem(); err != nil {
			if st.Phase == protocol.PhaseUnknown {
				st.Phase, st.Reason, st.Message = protocol.PhaseFailed, protocol.ReasonStateError, err.Error()
			}
			if st.Sync == protocol.PhaseUnknown {
				st.Sync, st.SyncReason, st.SyncMsg = protocol.PhaseFailed, protocol.ReasonStateError, err.Error()
			}
		}
	}
	return n.writeStatus(stdout, &st)
}

func fillRun(st *protocol.Status, rec *Record) {
	st.Phase, st.Reason, st.Message = rec.Phase, rec.Reason, rec.Message
	st.Request, st.Applied = rec.request(), rec.ConfigVersion
	st.Targets = rec.Targets
	st.Exit = rec.ExitCode
	st.Changed, st.Failed, st.Total, st.Pending = rec.Changed, rec.Failed, rec.Total, rec.Pending
	if !rec.Started.IsZero() {
		st.Started = rec.Started.Unix()
	}
	if !rec.Finished.IsZero() {
		st.Finished = rec.Finished.Unix()
		if !rec.Started.IsZero() {
			st.Duration = rec.Finished.Sub(rec.Started).Round(10 * 1e6).Seconds()
		}
	}
}

func (n *Node) writeStatus(stdout io.Writer, st *protocol.Status) error {
	msgs := []*string{&st.Message, &st.SyncMsg, &st.Disabled}
	if st.Last != nil {
		msgs = append(msgs, &st.Last.Message)
	}
	b, err := encodeStatus(n.name, st, msgs)
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

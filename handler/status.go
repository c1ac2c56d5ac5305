package handler

import (
	"io"

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
		st.Phase, st.Message = protocol.PhaseUnknown, "bad request: "+err.Error()
		return n.writeStatus(stdout, &st)
	}

	st.Running = n.st.active()
	if req.ID == "" {
		if last, _ := n.st.latest(KindRun); last != nil {
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
		return n.writeStatus(stdout, &st)
	}

	st.ID = req.ID
	known := false
	if rec, err := n.st.load(req.ID, KindRun); err == nil {
		fillRun(&st, n.st.reconcile(rec, n.recoverRun))
		known = true
	}
	if n.isMaster() {
		st.Sync = protocol.PhaseUnknown
		if rec, err := n.st.load(req.ID, KindSync); err == nil {
			known = true
			rec = n.st.reconcile(rec, n.recoverRun)
			st.Sync, st.SyncMsg, st.Commit, st.Reached, st.Listed = rec.Phase, rec.Message, rec.Commit, rec.Reached, rec.Listed
			st.SyncReason = rec.Reason
			if rec.Deploy != nil {
				st.Targets, st.Batched = rec.Deploy.Targets, rec.Deploy.SyncOnly
			}
			st.Request = rec.request()
		}
	}
	if req.Known && !known {
		return nil // serf sends no answer for a handler that writes nothing
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
	b, err := protocol.EncodeAnswer(n.name, st, msgs...)
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

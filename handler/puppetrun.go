package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// handlePuppetRun answers the `puppetrun` query: start the run detached and
// answer at once, or say why not.
func (n *Node) handlePuppetRun(stdin io.Reader, stdout io.Writer) error {
	answer := protocol.RunAnswer{V: protocol.Version, Node: n.name}
	reply := func() error {
		b, err := protocol.EncodeAnswer(n.name, &answer, &answer.Message)
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	}

	b, err := readPayload(stdin, protocol.MaxQueryResponse)
	var req protocol.RunRequest
	if err == nil {
		err = protocol.DecodeStrict(b, &req)
	}
	if err == nil {
		err = req.Validate()
	}
	if err != nil {
		n.log.Printf("puppetrun rejected: %v", err)
		answer.Result, answer.Message = protocol.RunRejected, err.Error()
		return reply()
	}
	// A node that cannot record the run (a full or read-only state disk)
	// says so in its answer, which the CLI shows with its name: silence
	// would look like a lost node, and a run without a record is never
	// reported.
	cannot := func(err error) error {
		n.log.Printf("run %s: %v", req.ID, err)
		answer.Result, answer.Message = protocol.RunRejected, "this node cannot record the run: "+err.Error()
		return reply()
	}
	if err := n.stateProblem(); err != nil {
		return cannot(err)
	}
	unlock, err := n.st.lock()
	if err != nil {
		return cannot(err)
	}
	defer unlock()
	rec := n.newRecord(req.ID, KindRun, protocol.PhasePending, req.Request(), req.Build)
	rec.Puppet = req.PuppetFlags
	rec.Targets = req.Targets
	finalize := func(phase, reason, msg, result string) error {
		rec.Phase, rec.Reason, rec.Message, rec.Finished = phase, reason, msg, time.Now()
		if err := n.st.save(rec); err != nil {
			return cannot(err)
		}
		answer.Result, answer.Message = result, msg
		return reply()
	}

	if err := n.st.create(rec); err != nil {
		if !errors.Is(err, os.ErrExist) {
			return cannot(err)
		}
		// A repeat of a request this node has already taken (the event was
		// delivered twice, or two masters triggered the same deploy).
		old, err := n.st.load(req.ID, KindRun)
		if err != nil {
			// Answering "already" would leave the CLI waiting for a
			// run this node cannot report.
			n.log.Printf("run %s: %v", req.ID, err)
			answer.Result = protocol.RunRejected
			answer.Message = fmt.Sprintf("this node's record of %s cannot be read (%v); remove %s on it to use the id again", req.ID, err, filepath.Dir(n.st.recordPath(req.ID, KindRun)))
			return reply()
		}
		answer.Result = protocol.RunAlready
		answer.Message, answer.Request = old.Phase, old.request()
		if old.Phase == protocol.PhaseSkipped {
			// A second master's trigger: still not a target, so it
			// is not counted among the nodes the deploy reached.
			answer.Result = protocol.RunSkipped
		}
		return reply()
	}

	if req.SkipMasters && n.isMaster() {
		return finalize(protocol.PhaseSkipped, "", "masters were not targeted", protocol.RunSkipped)
	}
	if msg, disabled := puppetDisabled(n.cfg.Puppet.StateDir); disabled {
		return finalize(protocol.PhaseDisabled, protocol.ReasonDisabled, msg, protocol.RunDisabled)
	}
	if busy, running := n.busyWith(); busy != "" {
		answer.Running = running
		if req.WaitSec == 0 {
			return finalize(protocol.PhaseBusy, protocol.ReasonLocked, busy+"; this one was not started", protocol.RunBusy)
		}
		// Queued: the worker starts Puppet when the other run ends.
		rec.WaitUntil = time.Now().Add(time.Duration(req.WaitSec) * time.Second)
		rec.Message = busy + "; this one is queued behind it"
		answer.Result, answer.Message = protocol.RunQueued, rec.Message
		if err := n.st.save(rec); err != nil { // before the worker reads it
			return cannot(err)
		}
	} else if err := n.st.setActive(rec.ID); err != nil {
		return cannot(err)
	}
	pid, err := n.worker(WorkRun, rec.ID)
	if err != nil {
		n.st.clearActive(rec.ID)
		return finalize(protocol.PhaseFailed, protocol.ReasonStartFailed, err.Error(), protocol.RunRejected)
	}
	rec.setWorker(pid)
	if err := n.st.save(rec); err != nil {
		// The worker runs and records itself (startWorker): the run
		// started all the same.
		n.log.Printf("run %s: recording worker %d: %v", rec.ID, pid, err)
	}
	n.log.Printf("run %s: started worker %d", rec.ID, pid)
	if answer.Result == "" {
		answer.Result = protocol.RunStarted
	}
	return reply()
}

// busyWith says what run is in progress on this node, if any: one of
// serfdeploy's (its id in running) or another Puppet holding the agent's
// lock. The caller holds the state lock.
func (n *Node) busyWith() (busy, running string) {
	if running := n.st.active(); running != "" {
		return fmt.Sprintf("run %s was in progress", running), running
	}
	if pid, held := puppetLockHeld(n.cfg.Puppet.StateDir); held {
		return fmt.Sprintf("another puppet run (pid %d) held the agent's lock", pid), ""
	}
	return "", ""
}

// waitTurn holds a queued run until no other is in progress, then makes it
// the active one; at rec.WaitUntil it gives up and records the run busy
// (errGaveUp). It checks every waitPoll.
func (n *Node) waitTurn(ctx context.Context, rec *Record) error {
	for {
		unlock, err := n.st.lock()
		if err != nil {
			return err
		}
		busy, _ := n.busyWith()
		if busy == "" {
			err = n.st.setActive(rec.ID)
			unlock()
			return err
		}
		unlock()
		if time.Now().After(rec.WaitUntil) {
			rec.Phase, rec.Reason, rec.Finished = protocol.PhaseBusy, protocol.ReasonLocked, time.Now()
			rec.Message = fmt.Sprintf("%s until the wait ended (%s); this one was not started", busy, rec.WaitUntil.Sub(rec.Created).Round(time.Second))
			if err := n.st.saveLocked(rec); err != nil {
				return err
			}
			return errGaveUp
		}
		select {
		case <-ctx.Done():
			rec.Phase, rec.Reason, rec.Finished = protocol.PhaseFailed, protocol.ReasonInterrupted, time.Now()
			rec.Message = "the worker was stopped while the run waited for its turn"
			if err := n.st.saveLocked(rec); err != nil {
				return err
			}
			return errGaveUp
		case <-time.After(waitPoll):
		}
	}
}

// waitPoll is how often a queued run looks whether its turn has come.
const waitPoll = 500 * time.Millisecond

// errGaveUp: a queued run never got its turn; its record says why.
var errGaveUp = errors.New("the queued run did not get its turn")

// puppetDisabled reads puppet's agent_disabled.lock, which `puppet agent
// --disable "message"` writes as {"disabled_message": "..."}.
func puppetDisabled(statedir string) (string, bool) {
	b, err := os.ReadFile(statedir + "/agent_disabled.lock")
	if err != nil {
		return "", false
	}
	var lock struct {
		Message string `json:"disabled_message"`
	}
	if json.Unmarshal(b, &lock) != nil || lock.Message == "" {
		return "puppet agent is disabled (no reason given)", true
	}
	return "puppet agent is disabled: " + lock.Message, true
}

// puppetLockHeld reads puppet's agent_catalog_run.lock, a pid file; the lock
// is held while that pid is a live Puppet process, as Puppet itself judges
// it (puppetProcess).
func puppetLockHeld(statedir string) (int, bool) {
	b, err := os.ReadFile(statedir + "/agent_catalog_run.lock")
	if err != nil {
		return 0, false
	}
	var pid int
	if _, err := fmt.Sscanf(string(b), "%d", &pid); err != nil || pid <= 0 {
		return 0, false
	}
	if !puppetProcess(pid) {
		return 0, false // a stale lock: puppet itself clears it
	}
	return pid, true
}

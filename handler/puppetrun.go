package handler

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
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
	unlock, err := n.st.lock()
	if err != nil {
		return err
	}
	defer unlock()
	rec := n.newRecord(req.ID, KindRun, protocol.PhasePending, req.Request(), req.Build)
	rec.Puppet = req.PuppetFlags
	finalize := func(phase, reason, msg, result string) error {
		rec.Phase, rec.Reason, rec.Message, rec.Finished = phase, reason, msg, time.Now()
		if err := n.st.save(rec); err != nil {
			return err
		}
		answer.Result, answer.Message = result, msg
		return reply()
	}

	if err := n.st.create(rec); err != nil {
		if !errors.Is(err, os.ErrExist) {
			return err
		}
		// A repeat of a request this node has already taken (the event was
		// delivered twice, or two masters triggered the same deploy).
		answer.Result = protocol.RunAlready
		if old, err := n.st.load(req.ID, KindRun); err == nil {
			answer.Message, answer.Request = old.Phase, old.request()
			if old.Phase == protocol.PhaseSkipped {
				// A second master's trigger: still not a target, so it
				// is not counted among the nodes the deploy reached.
				answer.Result = protocol.RunSkipped
			}
		}
		return reply()
	}

	if req.SkipMasters && n.isMaster() {
		return finalize(protocol.PhaseSkipped, "", "masters were not targeted", protocol.RunSkipped)
	}
	if running := n.st.active(); running != "" {
		answer.Running = running
		return finalize(protocol.PhaseBusy, protocol.ReasonLocked,
			fmt.Sprintf("run %s was in progress; this one was not started", running), protocol.RunBusy)
	}
	if msg, disabled := puppetDisabled(n.cfg.Puppet.StateDir); disabled {
		return finalize(protocol.PhaseDisabled, protocol.ReasonDisabled, msg, protocol.RunDisabled)
	}
	if pid, held := puppetLockHeld(n.cfg.Puppet.StateDir); held {
		return finalize(protocol.PhaseBusy, protocol.ReasonLocked,
			fmt.Sprintf("another puppet run (pid %d) holds the agent's lock; this one was not started", pid), protocol.RunBusy)
	}

	if err := n.st.setActive(rec.ID); err != nil {
		return err
	}
	pid, err := n.worker(WorkRun, rec.ID)
	if err != nil {
		n.st.clearActive(rec.ID)
		return finalize(protocol.PhaseFailed, protocol.ReasonStartFailed, err.Error(), protocol.RunRejected)
	}
	rec.setWorker(pid)
	if err := n.st.save(rec); err != nil {
		return err
	}
	n.log.Printf("run %s: started worker %d", rec.ID, pid)
	answer.Result = protocol.RunStarted
	return reply()
}

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
// is held while that pid is alive.
func puppetLockHeld(statedir string) (int, bool) {
	b, err := os.ReadFile(statedir + "/agent_catalog_run.lock")
	if err != nil {
		return 0, false
	}
	var pid int
	if _, err := fmt.Sscanf(string(b), "%d", &pid); err != nil || pid <= 0 {
		return 0, false
	}
	if _, err := processStart(pid); err != nil {
		return 0, false // a stale lock: puppet itself ignores it
	}
	return pid, true
}

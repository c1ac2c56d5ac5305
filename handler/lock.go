package handler

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"

	"github.com/serfdeploy/serfdeploy/internal/atomicfile"
	"github.com/serfdeploy/serfdeploy/protocol"
)

// handleLock answers puppet-disable and puppet-enable by writing or
// removing Puppet's own agent_disabled.lock, in the form `puppet agent
// --disable "why"` writes it: Puppet run from cron or by hand honours it,
// and the puppetrun handler refuses runs while it is there.
func (n *Node) handleLock(stdin io.Reader, stdout io.Writer, disable bool) error {
	answer := protocol.LockAnswer{V: protocol.Version, Node: n.name}
	b, err := readPayload(stdin, protocol.MaxQueryResponse)
	var req protocol.LockRequest
	if err == nil && len(b) > 0 {
		err = protocol.DecodeStrict(b, &req)
	}
	if err == nil && disable {
		err = protocol.ValidDisableMessage(req.Message)
	}
	if err == nil {
		answer.Result, answer.Message, err = n.setPuppetLock(disable, req.Message)
	}
	if err != nil {
		n.log.Printf("puppet lock: %v", err)
		answer.Result, answer.Message = protocol.LockError, err.Error()
	}
	out, err := protocol.EncodeAnswer(n.name, &answer, &answer.Message)
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

// setPuppetLock disables (with msg) or enables Puppet, and says what it did.
func (n *Node) setPuppetLock(disable bool, msg string) (result, detail string, err error) {
	path := filepath.Join(n.cfg.Puppet.StateDir, "agent_disabled.lock")
	current, disabled := puppetDisabled(n.cfg.Puppet.StateDir)
	if !disable {
		if !disabled {
			return protocol.LockAlready, "puppet agent was not disabled", nil
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", "", err
		}
		n.log.Printf("puppet agent enabled (was: %s)", current)
		return protocol.LockEnabled, current, nil
	}
	if disabled {
		// Another operator's reason stands: overwriting it would hide why.
		return protocol.LockAlready, current, nil
	}
	data, err := json.Marshal(map[string]string{"disabled_message": msg})
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(n.cfg.Puppet.StateDir, 0o755); err != nil {
		return "", "", err
	}
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return "", "", err
	}
	n.log.Printf("puppet agent disabled: %s", msg)
	return protocol.LockDisabled, "puppet agent is disabled: " + msg, nil
}

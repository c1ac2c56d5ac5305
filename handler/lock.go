package handler

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

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

// puppetProcess reports whether pid is a live Puppet process, by Puppet's
// own rule for its run lock (lib/puppet/util/pidlock.rb, clear_if_stale):
// the lock is stale unless its pid runs and `ps -o comm=` is ruby with
// "puppet" in `ps -o args=`, or comm ends in puppet or puppet-something.
// A pid reused by any other process (a shell, sleep, a daemon) after a
// Puppet run died without removing its lock is therefore not a run in
// progress: Puppet would clear that lock and run. /proc gives what ps
// prints: comm, and cmdline with NULs between the arguments.
func puppetProcess(pid int) bool {
	if _, err := processStart(pid); err != nil {
		return false // gone, or a zombie
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return false
	}
	name := strings.TrimSpace(string(comm))
	if puppetComm.MatchString(name) {
		return true
	}
	args, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(name, "ruby") && strings.Contains(string(args), "puppet")
}

// puppetComm is Puppet's /puppet(-.*)?$/ for the process name.
var puppetComm = regexp.MustCompile(`puppet(-.*)?$`)

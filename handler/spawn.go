package handler

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// Worker kinds, started as `serfdeploy worker --config FILE KIND ID`.
const (
	WorkRun   = "run"   // an agent's puppet run
	WorkSync  = "sync"  // a master's code sync and trigger
	WorkFlush = "flush" // send spooled log records
	WorkFacts = "facts" // read the node's Puppet facts (facts.go)
)

// spawnSelf starts this binary as a detached worker: its own session (so it
// survives the handler's exit and a restart of the serf agent), stdin from
// /dev/null and output to a file, because serf waits for the handler's stdout
// and stderr to close before it answers a query.
func (n *Node) spawnSelf(kind, id string) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	logDir := filepath.Join(n.st.dir, "workers")
	if id != "" {
		logDir = n.st.runDir(id)
	}
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return 0, err
	}
	out, err := os.OpenFile(filepath.Join(logDir, kind+"-worker.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	args := []string{"worker", "--config", n.cfgPath, kind}
	if id != "" {
		args = append(args, id)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting the %s worker: %w", kind, err)
	}
	pid := cmd.Process.Pid
	// Reap it in the background while this process lives; once the handler
	// exits, init adopts it.
	go cmd.Wait()
	return pid, nil
}

package handler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// workRun is an agent's worker for one run: run puppet, classify the result
// from the evidence, record it, and report it to the logging service.
func (n *Node) workRun(ctx context.Context, id string) error {
	rec, err := n.st.update(id, KindRun, func(r *Record) {
		r.WorkerPID = os.Getpid()
		r.WorkerStart, _ = processStart(r.WorkerPID)
		r.Phase = protocol.PhaseRunning
		r.Started = time.Now()
	})
	if err != nil {
		return err
	}
	defer n.st.clearActive(id)
	n.report(ctx, rec, "started")

	dir := n.st.runDir(id)
	outPath := filepath.Join(dir, "puppet.log")
	jsonLog := filepath.Join(dir, "puppet.jsonl")
	args := n.puppetArgs(rec.Environment, jsonLog)
	exit, runErr := runPuppet(ctx, args, outPath, n.cfg.Puppet.Timeout)

	rec.Finished = time.Now()
	output, _ := os.ReadFile(outPath)
	entries := readLogEntries(jsonLog)
	if runErr != nil {
		rec.Phase, rec.Reason, rec.Message = protocol.PhaseFailed, protocol.ReasonStartFailed, runErr.Error()
		if errors.Is(runErr, context.DeadlineExceeded) {
			rec.Reason = protocol.ReasonPuppetError
		}
	} else {
		rec.ExitCode = &exit
		summary, _ := readSummary(n.cfg.Puppet.SummaryFile, rec.Started)
		o := classify(exit, summary, entries, string(output), n.cfg.Puppet.StateDir)
		rec.Phase, rec.Reason, rec.Message = o.phase, o.reason, protocol.Truncate(o.message, 2000)
		if summary != nil {
			rec.Changed = summary.Resources.Changed
			rec.Failed = summary.Resources.Failed + summary.Resources.FailedToRestart
			rec.Total = summary.Resources.Total
			rec.ConfigVersion = summary.configVersion()
		}
		rec.FailedResources = failedResources(entries)
		if rec.Reason == protocol.ReasonResourcesFailed && len(rec.FailedResources) > 0 {
			// The status answer has room for one resource; name it, so
			// that a summary without the logging service still says what
			// failed.
			first := rec.FailedResources[0]
			rec.Message = protocol.Truncate(fmt.Sprintf("%s: %s: %s", resourcesMessage(summary, ""), first.Resource, first.Message), 2000)
		}
	}
	if err := n.st.saveLocked(rec); err != nil {
		return err
	}
	n.st.clearActive(id)
	n.log.Printf("run %s: %s %s (exit %s) %s", id, rec.Phase, rec.Reason, protocol.ExitText(rec.ExitCode), rec.Message)
	n.notify(ctx, rec.Notify, id)
	n.report(ctx, rec, "finished")
	n.st.prune(200)
	return nil
}

// puppetArgs builds the puppet command for one run.
func (n *Node) puppetArgs(env, jsonLog string) []string {
	var args []string
	for _, a := range n.cfg.Puppet.Command {
		args = append(args, strings.ReplaceAll(a, "{environment}", env))
	}
	if *n.cfg.Puppet.JSONLog {
		args = append(args, "--logdest", "console", "--logdest", jsonLog)
	}
	return args
}

// runPuppet runs the command with its output in outPath and returns its exit
// code. An error means it could not be run (or was killed at the timeout).
func runPuppet(ctx context.Context, args []string, outPath string, timeout time.Duration) (int, error) {
	if len(args) == 0 {
		return 0, errors.New("puppet.command is empty")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Stdin = nil
	// Its own process group, so that the timeout stops puppet's children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err = cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return 0, fmt.Errorf("puppet did not finish within %s and was stopped: %w", timeout, context.DeadlineExceeded)
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("running %s: %w", args[0], err)
	}
	return 0, nil
}

package handler

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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
	if queued, err := n.st.load(id, KindRun); err == nil && !queued.WaitUntil.IsZero() {
		if err := n.waitTurn(ctx, queued); err != nil {
			if errors.Is(err, errGaveUp) {
				n.report(ctx, queued, protocol.LogFinished)
				return nil
			}
			return err
		}
	}
	if req, err := n.st.load(id, KindRun); err == nil && req.Puppet.SplaySec > 0 {
		if err := n.splay(ctx, req); errors.Is(err, errGaveUp) {
			return nil // its record says why it did not start
		} else if err != nil {
			return err
		}
	}
	rec, err := n.st.startWorker(id, KindRun, protocol.PhaseRunning)
	if err != nil {
		return err
	}
	defer n.st.clearActive(id)
	n.report(ctx, rec, protocol.LogStarted)

	dir := n.st.runDir(id)
	outPath := filepath.Join(dir, "puppet.log")
	jsonLog := filepath.Join(dir, "puppet.jsonl")
	args := n.puppetArgs(rec.Environment, rec.Puppet, jsonLog)
	rec.SummaryBefore = summaryMark(n.cfg.Puppet.SummaryFile)
	exit, runErr := runPuppet(ctx, n.killNow, args, outPath, n.cfg.Puppet.Timeout, func(pid int) {
		rec.PuppetPID = pid
		rec.PuppetStart, _ = processStart(pid)
		if err := n.st.saveLocked(rec); err != nil {
			n.log.Printf("run %s: recording puppet's pid: %v", id, err)
		}
	})

	rec.Finished = time.Now()
	output := readOutput(outPath)
	entries := readLogEntries(jsonLog)
	switch {
	case errors.Is(runErr, errStopped):
		rec.Phase, rec.Reason, rec.Message = protocol.PhaseFailed, protocol.ReasonInterrupted, runErr.Error()
	case runErr != nil:
		rec.Phase, rec.Reason, rec.Message = protocol.PhaseFailed, protocol.ReasonStartFailed, runErr.Error()
		if errors.Is(runErr, context.DeadlineExceeded) {
			rec.Reason = protocol.ReasonPuppetError
		}
	default:
		rec.ExitCode = &exit
		summary, _ := readSummary(n.cfg.Puppet.SummaryFile, rec.Started, rec.SummaryBefore)
		o := classify(exit, summary, entries, output, n.cfg.Puppet.StateDir)
		rec.Phase, rec.Reason, rec.Message = o.phase, o.reason, protocol.Truncate(o.message, 2000)
		if summary != nil {
			rec.Changed = summary.Resources.Changed
			rec.Failed = summary.Resources.Failed + summary.Resources.FailedToRestart
			rec.Total = summary.Resources.Total
			if rec.Puppet.Noop {
				rec.Pending = summary.Events.Noop
			}
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
	n.report(ctx, rec, protocol.LogFinished)
	n.st.prune(200)
	return nil
}

// puppetArgs builds the puppet command for one run. The flags were checked
// against Puppet's tag syntax (protocol.PuppetFlags.Validate) and are
// separate arguments, never shell words.
func (n *Node) puppetArgs(env string, flags protocol.PuppetFlags, jsonLog string) []string {
	var args []string
	command := n.cfg.Puppet.Command
	for i := 0; i < len(command); i++ {
		a := command[i]
		if env == "" {
			// No environment asked for: Puppet picks its own, so the
			// command's --environment goes. Any other use of the
			// placeholder (a path) gets the node's configured one.
			if a == "--environment" && i+1 < len(command) && command[i+1] == "{environment}" {
				i++
				continue
			}
			if a == "--environment={environment}" {
				continue
			}
			a = strings.ReplaceAll(a, "{environment}", n.cfg.Environment)
		}
		args = append(args, strings.ReplaceAll(a, "{environment}", env))
	}
	if flags.Noop {
		args = append(args, "--noop")
	}
	if flags.Tags != "" {
		args = append(args, "--tags", flags.Tags)
	}
	if flags.SkipTags != "" {
		args = append(args, "--skip_tags", flags.SkipTags)
	}
	if *n.cfg.Puppet.JSONLog {
		args = append(args, "--logdest", "console", "--logdest", jsonLog)
	}
	return args
}

// errStopped: the worker was told to stop (SIGTERM) during the run.
var errStopped = errors.New("the worker was stopped during the run")

// killGrace is how long Puppet has to finish after SIGTERM before SIGKILL.
const killGrace = 10 * time.Second

// runPuppet runs the command with its output in outPath and returns its exit
// code. An error means it could not be run, or was stopped: by the timeout,
// or by ctx ending (SIGTERM to its process group, SIGKILL after killGrace or
// as soon as now closes).
func runPuppet(ctx context.Context, now <-chan struct{}, args []string, outPath string, timeout time.Duration, started func(pid int)) (int, error) {
	if len(args) == 0 {
		return 0, errors.New("puppet.command is empty")
	}
	stopped := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Stdin = nil
	// Its own process group, so that stopping it stops puppet's children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = killGrace
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("running %s: %w", args[0], err)
	}
	started(cmd.Process.Pid)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-now:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-ctx.Done():
			// Past the grace period the group goes, not only its leader
			// (which WaitDelay would kill).
			select {
			case <-time.After(killGrace):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			case <-now:
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			case <-done:
			}
		case <-done:
		}
	}()
	err = cmd.Wait()
	switch {
	case stopped.Err() != nil:
		return 0, fmt.Errorf("%w: puppet was sent SIGTERM", errStopped)
	case ctx.Err() == context.DeadlineExceeded:
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

// splay holds a run a random part of its --splay before Puppet starts, so
// that a fleet does not ask the Puppet server for catalogs all at once. A
// worker stopped meanwhile records the run failed, as a queued one does.
func (n *Node) splay(ctx context.Context, rec *Record) error {
	wait := rand.N(time.Duration(rec.Puppet.SplaySec) * time.Second)
	n.log.Printf("run %s: splay: waiting %s before puppet starts", rec.ID, wait.Round(time.Millisecond))
	select {
	case <-time.After(wait):
		return nil
	case <-ctx.Done():
		rec.Phase, rec.Reason, rec.Finished = protocol.PhaseFailed, protocol.ReasonInterrupted, time.Now()
		rec.Message = "the worker was stopped while the run waited for its --splay"
		if err := n.st.saveLocked(rec); err != nil {
			return err
		}
		n.st.clearActive(rec.ID)
		n.report(context.Background(), rec, protocol.LogFinished)
		return errGaveUp
	}
}

package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// startRun claims a run and starts its worker in this process, returning
// when Puppet (the given command) has started.
func startRun(t *testing.T, n *Node, id string, ctx context.Context, now chan struct{}) chan error {
	t.Helper()
	done := make(chan error, 1)
	n.worker = func(kind, id string) (int, error) {
		go func() { done <- n.Work(ctx, now, kind, id) }()
		return os.Getpid(), nil
	}
	if a := ask(t, n, `{"id":"`+id+`"}`); a.Result != protocol.RunStarted {
		t.Fatalf("answer %+v", a)
	}
	pidFile := filepath.Join(n.cfg.StateDir, "puppet.pid")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(pidFile); err == nil {
			return done
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("puppet never started")
	return nil
}

// puppetAlive reports whether the stand-in Puppet (whose pid it wrote) lives.
func puppetAlive(t *testing.T, n *Node) bool {
	b, err := os.ReadFile(filepath.Join(n.cfg.StateDir, "puppet.pid"))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	for _, c := range strings.TrimSpace(string(b)) {
		pid = pid*10 + int(c-'0')
	}
	return syscall.Kill(pid, 0) == nil
}

// TestStoppedWorkerRecordsTheRun: SIGTERM to a worker (here: its context
// ending) stops Puppet's process group and records the run interrupted.
// Before, the worker ignored it and Puppet went on unrecorded.
func TestStoppedWorkerRecordsTheRun(t *testing.T) {
	n := testNode(t, "/bin/sh", "-c", `echo $$ > "$0"; exec sleep 30`, "STATE/puppet.pid")
	n.cfg.Puppet.Command[3] = filepath.Join(n.cfg.StateDir, "puppet.pid")
	ctx, stop := context.WithCancel(context.Background())
	done := startRun(t, n, "stop-1", ctx, make(chan struct{}))
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(killGrace + 5*time.Second):
		t.Fatal("the worker did not stop")
	}
	rec, err := n.st.load("stop-1", KindRun)
	if err != nil || rec.Phase != protocol.PhaseFailed || rec.Reason != protocol.ReasonInterrupted {
		t.Fatalf("record %+v %v", rec, err)
	}
	if puppetAlive(t, n) {
		t.Fatal("puppet still runs after the worker stopped")
	}
}

// TestSecondSignalKillsAtOnce: Puppet that ignores SIGTERM is killed as
// soon as the second signal comes, not after the grace period.
func TestSecondSignalKillsAtOnce(t *testing.T) {
	n := testNode(t, "/bin/sh", "-c", `trap "" TERM; echo $$ > "$0"; sleep 30 & wait`, "STATE/puppet.pid")
	n.cfg.Puppet.Command[3] = filepath.Join(n.cfg.StateDir, "puppet.pid")
	ctx, stop := context.WithCancel(context.Background())
	now := make(chan struct{})
	done := startRun(t, n, "stop-2", ctx, now)
	stop()
	time.Sleep(200 * time.Millisecond)
	if !puppetAlive(t, n) {
		t.Fatal("puppet ignoring SIGTERM died at the first signal")
	}
	close(now)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(killGrace - time.Second):
		t.Fatal("the second signal did not kill puppet before the grace period ran out")
	}
	if rec, _ := n.st.load("stop-2", KindRun); rec.Reason != protocol.ReasonInterrupted {
		t.Fatalf("record %+v", rec)
	}
}

// TestStateIsPrivate: a node's records, logs and spool carry build URLs and
// Puppet's messages: files 0600, directories 0700. (Releases stay readable:
// Puppet's server, another user, compiles them.)
func TestStateIsPrivate(t *testing.T) {
	n := testNode(t, "/bin/true")
	done := make(chan error, 1)
	n.worker = func(kind, id string) (int, error) {
		go func() { done <- n.Work(context.Background(), nil, kind, id) }()
		return os.Getpid(), nil
	}
	if a := ask(t, n, `{"id":"private-1"}`); a.Result != protocol.RunStarted {
		t.Fatalf("answer %+v", a)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	runDir := n.st.runDir("private-1")
	for path, want := range map[string]os.FileMode{
		runDir:                                       0o700,
		filepath.Dir(runDir):                         0o700,
		filepath.Join(runDir, "run.json"):            0o600,
		filepath.Join(runDir, "puppet.log"):          0o600,
		filepath.Join(n.cfg.StateDir, "handler.log"): 0o600,
		filepath.Join(n.cfg.StateDir, "lock"):        0o600,
	} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", path, got, want)
		}
	}
}

// TestStatusCountsRefusedLogRecords: records the logging service refused
// for good are set aside, and the node's status says how many.
func TestStatusCountsRefusedLogRecords(t *testing.T) {
	n := testNode(t, "/bin/true")
	rejected := filepath.Join(n.st.spoolDir(), "rejected")
	if err := os.MkdirAll(rejected, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"1-a.json", "2-b.json"} {
		if err := os.WriteFile(filepath.Join(rejected, name), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := n.handleStatus(strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	var st protocol.Status
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || st.LogSetAside != 2 {
		t.Fatalf("%v %+v", err, st)
	}
}

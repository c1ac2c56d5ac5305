package handler

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

func TestCreateClaimsAnIDOnce(t *testing.T) {
	s := state{dir: t.TempDir()}
	r := &Record{ID: "d1", Kind: KindRun, Phase: protocol.PhasePending, Created: time.Now()}
	if err := s.create(r); err != nil {
		t.Fatal(err)
	}
	if err := s.create(r); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second claim of the same id: %v", err)
	}
	got, err := s.load("d1", KindRun)
	if err != nil || got.Phase != protocol.PhasePending {
		t.Fatalf("%+v %v", got, err)
	}
}

// A worker killed before it recorded a result is reported failed, not
// running forever; a live worker is left alone, and a reused pid (same
// number, other process) does not pass for the worker.
func TestReconcileDeadWorker(t *testing.T) {
	s := state{dir: t.TempDir()}
	worker := exec.Command("sleep", "30")
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	start, err := processStart(worker.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	r := &Record{ID: "d2", Kind: KindRun, Phase: protocol.PhaseRunning, WorkerPID: worker.Process.Pid, WorkerStart: start, Created: time.Now()}
	if err := s.create(r); err != nil {
		t.Fatal(err)
	}
	s.setActive("d2")
	if got := s.reconcile(r, nil); got.Phase != protocol.PhaseRunning || s.active() != "d2" {
		t.Fatalf("live worker: %+v, active %q", got, s.active())
	}
	impostor := *r
	impostor.WorkerStart = start - 1
	if impostor.workerAlive() {
		t.Fatal("a pid with another start time passed for the worker")
	}
	worker.Process.Kill()
	worker.Wait()
	got := s.reconcile(r, nil)
	if got.Phase != protocol.PhaseFailed || got.Reason != protocol.ReasonWorkerDied || s.active() != "" {
		t.Fatalf("dead worker: %+v, active %q", got, s.active())
	}
	saved, _ := s.load("d2", KindRun)
	if saved.Reason != protocol.ReasonWorkerDied {
		t.Fatalf("not saved: %+v", saved)
	}
	// Claimed but never started: a grace period, then failed.
	fresh := &Record{ID: "d3", Kind: KindRun, Phase: protocol.PhasePending, Created: time.Now()}
	if err := s.create(fresh); err != nil {
		t.Fatal(err)
	}
	if s.reconcile(fresh, nil).Phase != protocol.PhasePending {
		t.Fatal("a just-claimed run was failed at once")
	}
	fresh.Created = time.Now().Add(-time.Minute)
	if err := s.save(fresh); err != nil {
		t.Fatal(err)
	}
	if s.reconcile(fresh, nil).Reason != protocol.ReasonWorkerDied {
		t.Fatal("a claimed run never started was not failed")
	}
}

func TestWriteFileAtomicLeavesNoPartialFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.json")
	if err := writeFileAtomic(p, []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "node.yaml")
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	c, err := LoadConfig(write(""))
	if err != nil || c.Role != "" || c.StateDir != "/var/lib/serfdeploy" || c.Puppet.Command[0] != "puppet" || !*c.Puppet.JSONLog {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for _, bad := range []string{"rol: master\n", "role: boss\n", "master_tag: nothing\n", "environment: Prod-1\n", "master:\n  modules:\n    Bad-Name: x\n"} {
		if _, err := LoadConfig(write(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("a missing config was accepted")
	}
}

// TestReconcileDoesNotOverwriteAResult: the status handler read a run as
// running; before it decided, the worker saved "finished" and exited. The
// worker_died verdict must not overwrite the result (before, it did, and
// without Loki the CLI exited 1 for a good run).
func TestReconcileDoesNotOverwriteAResult(t *testing.T) {
	s := state{dir: t.TempDir()}
	worker := exec.Command("true")
	if err := worker.Run(); err != nil {
		t.Fatal(err)
	}
	r := &Record{ID: "d2", Kind: KindRun, Phase: protocol.PhaseRunning, WorkerPID: worker.Process.Pid, WorkerStart: 1, Created: time.Now()}
	if err := s.create(r); err != nil {
		t.Fatal(err)
	}
	stale := *r // what the status handler read
	done := *r
	done.Phase, done.Finished = protocol.PhaseFinished, time.Now()
	if err := s.saveLocked(&done); err != nil { // the worker's last act
		t.Fatal(err)
	}
	got := s.reconcile(&stale, nil)
	onDisk, err := s.load("d2", KindRun)
	if err != nil {
		t.Fatal(err)
	}
	if got.Phase != protocol.PhaseFinished || onDisk.Phase != protocol.PhaseFinished {
		t.Fatalf("answered %s, on disk %s (%s): a finished run was overwritten", got.Phase, onDisk.Phase, onDisk.Reason)
	}
}

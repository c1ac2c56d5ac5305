package handler

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// TestWorkerDiedPuppetGoesOn: a run's worker is killed (SIGKILL, the OOM
// killer) while Puppet goes on. While Puppet runs the run is running, not
// worker_died; once Puppet has ended, the run is decided from its summary.
// Before, the first status query called it failed (worker_died) at once:
// the fault campaign's false reds.
func TestWorkerDiedPuppetGoesOn(t *testing.T) {
	n := testNode(t, "/bin/true")
	dead := exec.Command("/bin/true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	puppet := exec.Command("/bin/sleep", "30")
	if err := puppet.Start(); err != nil {
		t.Fatal(err)
	}
	defer puppet.Process.Kill()
	started := time.Now().Add(-time.Second)
	rec := &Record{ID: "orphan-1", Kind: KindRun, Phase: protocol.PhaseRunning, Created: started, Started: started,
		WorkerPID: dead.Process.Pid, WorkerStart: 1, PuppetPID: puppet.Process.Pid}
	rec.PuppetStart, _ = processStart(puppet.Process.Pid)
	if err := n.st.create(rec); err != nil {
		t.Fatal(err)
	}
	if got := n.st.reconcile(rec, n.recoverRun); got.Phase != protocol.PhaseRunning {
		t.Fatalf("with Puppet still running: %+v", got)
	}

	// Puppet ends, having written its summary: one resource changed.
	summary := "version:\n  config: \"motd=abc\"\nresources:\n  changed: 1\n  failed: 0\n  total: 7\n"
	if err := os.WriteFile(n.cfg.Puppet.SummaryFile, []byte(summary), 0o644); err != nil {
		t.Fatal(err)
	}
	puppet.Process.Kill()
	puppet.Wait()
	got := n.st.reconcile(rec, n.recoverRun)
	if got.Phase != protocol.PhaseFinished || got.Changed != 1 || got.Total != 7 || got.ConfigVersion != "motd=abc" {
		t.Fatalf("after Puppet ended: %+v", got)
	}
	if saved, _ := n.st.load("orphan-1", KindRun); saved.Phase != protocol.PhaseFinished {
		t.Fatalf("saved %+v", saved)
	}

	// Without a summary of this run: worker_died, as before.
	old := &Record{ID: "orphan-2", Kind: KindRun, Phase: protocol.PhaseRunning, Created: time.Now(), Started: time.Now().Add(time.Hour),
		WorkerPID: dead.Process.Pid, WorkerStart: 1, PuppetPID: dead.Process.Pid, PuppetStart: 1}
	if err := n.st.create(old); err != nil {
		t.Fatal(err)
	}
	if got := n.st.reconcile(old, n.recoverRun); got.Reason != protocol.ReasonWorkerDied {
		t.Fatalf("no summary of this run: %+v", got)
	}

	// The previous run's summary, written just before this run started
	// (within the clock slack), and Puppet killed with its worker before
	// writing its own: worker_died, not the previous run's result (the
	// oracle's false green, seed 7 scenario 21).
	if err := os.WriteFile(n.cfg.Puppet.SummaryFile, []byte(summary), 0o644); err != nil {
		t.Fatal(err)
	}
	killed := &Record{ID: "orphan-3", Kind: KindRun, Phase: protocol.PhaseRunning, Created: time.Now(), Started: time.Now(),
		WorkerPID: dead.Process.Pid, WorkerStart: 1, PuppetPID: dead.Process.Pid, PuppetStart: 1,
		SummaryBefore: summaryMark(n.cfg.Puppet.SummaryFile)}
	if err := n.st.create(killed); err != nil {
		t.Fatal(err)
	}
	if got := n.st.reconcile(killed, n.recoverRun); got.Reason != protocol.ReasonWorkerDied {
		t.Fatalf("the previous run's summary was taken for this run's: %+v", got)
	}
}

// TestRunWithoutSummaryIgnoresThePreviousOne: Puppet fails before writing a
// summary, a second after the previous run wrote one with changes: the run
// is recorded without the previous run's counts.
func TestRunWithoutSummaryIgnoresThePreviousOne(t *testing.T) {
	n := scriptNode(t, `echo $$ > "$1"; echo "Error: Could not run: boom"; exit 1`)
	summary := "version:\n  config: \"motd=old\"\nresources:\n  changed: 3\n  failed: 0\n  total: 7\n"
	if err := os.WriteFile(n.cfg.Puppet.SummaryFile, []byte(summary), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-startRun(t, n, "no-summary-1", context.Background(), make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	rec, err := n.st.load("no-summary-1", KindRun)
	if err != nil || rec.Phase != protocol.PhaseFailed || rec.Changed != 0 || rec.Total != 0 || rec.ConfigVersion != "" {
		t.Fatalf("record %+v %v", rec, err)
	}
}

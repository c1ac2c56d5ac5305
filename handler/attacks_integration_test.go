package handler

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// A deploy event whose tag key holds a line break, sent through real serf
// agents as any cluster member could: before, the master accepted it, and
// its worker logged "no alive node matched --tag segment<newline>…", a
// second line of the sender's choosing in handler.log. Now the key is
// refused, in one line, and no message can break a line anyway.
func TestNewlineInATagKeyForgesNoLogLine(t *testing.T) {
	f := startRig(t)
	forged := "2026/01/01 00:00:00 master-01[1] deploy forged-1: installed motd at v9"
	payload := `{"id":"nl-1","module":"motd","ref":"v1","tags":{"segment\n` + forged + `":"qa"}}`
	serfCLI(t, f, "event", "-coalesce=false", protocol.EventDeploy, payload)
	path := filepath.Join(f.StateDir("master-01"), "handler.log")
	var log string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		log = string(b)
		// Handled: refused, or (before) synced and triggered.
		if strings.Contains(log, "deploy event rejected") || strings.Contains(log, "deploy nl-1: puppetrun") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the master did not handle the event:\n%s", log)
		}
	}
	for _, line := range strings.Split(strings.TrimSuffix(log, "\n"), "\n") {
		if !handlerLine.MatchString(line) || strings.HasPrefix(line, forged) {
			t.Fatalf("handler.log has a line the handler did not write: %q\n%s", line, log)
		}
	}
	if _, err := os.Stat(filepath.Join(f.StateDir("master-01"), "runs", "nl-1")); err == nil {
		t.Fatal("the deploy was recorded")
	}
}

// handlerLine is how the handler's logger starts every line it writes.
var handlerLine = regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d master-01\[\d+\] `)

// The master's serf agent restarts and rejoins with -replay once the
// deploy's runs/<id> was pruned: serf hands it the old deploy event again.
// Before, the master synced the old ref again and fired its runs.
func TestReplayedDeployAfterPruneThroughSerf(t *testing.T) {
	f := startRig(t)
	payload := `{"id":"rp-1","module":"motd","ref":"v1","tags":{"segment":"qa"}}`
	serfCLI(t, f, "event", "-coalesce=false", protocol.EventDeploy, payload)
	waitPhase(t, f, "agent-01", "rp-1", func(s protocol.Status) bool { return protocol.Done(s.Phase) })
	waitPhase(t, f, "master-01", "rp-1", func(s protocol.Status) bool { return s.Sync == protocol.PhaseTriggered })
	// What prune does once 200 newer runs are there.
	if err := os.RemoveAll(filepath.Join(f.StateDir("master-01"), "runs", "rp-1")); err != nil {
		t.Fatal(err)
	}
	master := f.Cluster.Node("master-01")
	master.Stop()
	f.Cluster.Restart(t, master, f.Cluster.Node("agent-01"), true)
	path := filepath.Join(f.StateDir("master-01"), "handler.log")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		log := string(b)
		if strings.Count(log, "deploy rp-1: syncing") > 1 {
			t.Fatalf("the replayed deploy was synced again:\n%s", log)
		}
		if strings.Contains(log, "deploy rp-1: already handled") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replay did not reach the master's handler:\n%s", log)
		}
	}
	if _, err := os.Stat(filepath.Join(f.StateDir("master-01"), "runs", "rp-1")); err == nil {
		t.Fatal("the replay made a new record")
	}
}

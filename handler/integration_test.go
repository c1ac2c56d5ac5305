package handler

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

// The tests below drive the handlers through real serf agents with the
// serf CLI, as another tool (or an attacker on the network) could, rather
// than through serfdeploy's own commands.

func serfCLI(t *testing.T, f *deployrig.Rig, args ...string) string {
	t.Helper()
	rpc := f.Cluster.Node("master-01").RPCAddr
	full := append([]string{args[0], "-rpc-addr", rpc}, args[1:]...)
	out, err := exec.Command("serf", full...).CombinedOutput()
	if err != nil {
		t.Fatalf("serf %v: %v\n%s", full, err, out)
	}
	return string(out)
}

func startRig(t *testing.T) *deployrig.Rig { return startRigWith(t, deployrig.Options{}) }

// startRigWith starts the three nodes with opts (Bin and Nodes set here).
func startRigWith(t *testing.T, opts deployrig.Options) *deployrig.Rig {
	dir := t.TempDir()
	bin, err := deployrig.BuildBinary(dir)
	if err != nil {
		t.Fatal(err)
	}
	opts.Bin = bin
	opts.Nodes = []deployrig.Node{
		{Name: "master-01", Master: true},
		{Name: "agent-01", Tags: map[string]string{"segment": "qa"}},
		{Name: "agent-02", Tags: map[string]string{"segment": "prod"}},
	}
	return deployrig.Start(t, opts)
}

// status asks one node for its puppet-status of id through `serf query`.
func status(t *testing.T, f *deployrig.Rig, node, id string) protocol.Status {
	t.Helper()
	payload, _ := json.Marshal(protocol.StatusRequest{ID: id})
	out := serfCLI(t, f, "query", "-format", "json", "-node", node, "-timeout", "3s", protocol.QueryPuppetStatus, string(payload))
	var q struct{ Responses map[string]string }
	if err := json.Unmarshal([]byte(out), &q); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var st protocol.Status
	if raw, ok := q.Responses[node]; ok {
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			t.Fatalf("%s answered %q: %v", node, raw, err)
		}
		if len(raw) > protocol.MaxQueryResponse {
			t.Fatalf("answer of %d bytes", len(raw))
		}
	}
	return st
}

func waitPhase(t *testing.T, f *deployrig.Rig, node, id string, done func(protocol.Status) bool) protocol.Status {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var st protocol.Status
	for time.Now().Before(deadline) {
		st = status(t, f, node, id)
		if done(st) {
			return st
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("%s: last status %+v", node, st)
	return st
}

func TestDuplicateDeployRunsPuppetOnce(t *testing.T) {
	f := startRig(t)
	counter := filepath.Join(t.TempDir(), "runs")
	f.Repo.CommitModule("v2", f.Files, fmt.Sprintf(`  exec { "count": command => "/bin/sh -c 'echo run >> %s'" }`, counter))
	payload := `{"id":"dup-1","module":"motd","ref":"v2","tags":{"segment":"qa"}}`
	serfCLI(t, f, "event", "-coalesce=false", protocol.EventDeploy, payload)
	serfCLI(t, f, "event", "-coalesce=false", protocol.EventDeploy, payload)

	st := waitPhase(t, f, "agent-01", "dup-1", func(s protocol.Status) bool { return protocol.Done(s.Phase) })
	if st.Phase != protocol.PhaseFinished || st.Exit == nil || *st.Exit != 2 || st.Changed != 2 {
		t.Fatalf("agent-01: %+v", st)
	}
	// The same request straight to the agent: answered "already", no run.
	out := serfCLI(t, f, "query", "-format", "json", "-node", "agent-01", "-timeout", "3s", protocol.QueryPuppetRun, `{"id":"dup-1"}`)
	if !strings.Contains(out, `\"result\":\"already\"`) {
		t.Fatalf("repeated puppetrun: %s", out)
	}
	master := status(t, f, "master-01", "dup-1")
	if master.Sync != protocol.PhaseTriggered || master.Commit == "" {
		t.Fatalf("master: %+v", master)
	}
	time.Sleep(2 * time.Second) // room for a wrong second run to show up
	b, _ := os.ReadFile(counter)
	if runs := strings.Count(string(b), "run"); runs != 1 {
		t.Fatalf("puppet ran %d times for one deploy delivered twice", runs)
	}
	if f.File("agent-02") != "" {
		t.Fatal("the prod agent ran")
	}
	log, _ := os.ReadFile(filepath.Join(f.StateDir("master-01"), "handler.log"))
	if !strings.Contains(string(log), "already handled") {
		t.Fatalf("master's log does not note the repeat:\n%s", log)
	}
}

func TestMaliciousPayloadsAreRejected(t *testing.T) {
	f := startRig(t)
	pwned := filepath.Join(t.TempDir(), "pwned")
	for _, p := range []string{
		`{"id":"evil-1","module":"motd;touch ` + pwned + `","ref":"v1"}`,
		`{"id":"evil-2","module":"motd","ref":"--upload-pack=touch ` + pwned + `"}`,
		`{"id":"../../evil-3","module":"motd","ref":"v1"}`,
		`{"id":"evil-4","module":"motd","ref":"v1","tags":{"segment":"(qa"}}`,
		`not json at all $(touch ` + pwned + `)`,
	} {
		serfCLI(t, f, "event", "-coalesce=false", protocol.EventDeploy, p)
	}
	out := serfCLI(t, f, "query", "-format", "json", "-node", "agent-01", "-timeout", "3s", protocol.QueryPuppetRun, `{"id":"x","env":"prod;touch `+pwned+`"}`)
	if !strings.Contains(out, `\"result\":\"rejected\"`) {
		t.Fatalf("bad puppetrun answer: %s", out)
	}
	out = serfCLI(t, f, "query", "-format", "json", "-node", "agent-01", "-timeout", "3s", protocol.QueryPuppetStatus, `{"id":"x","extra":1}`)
	if !strings.Contains(out, "agent-01") {
		t.Fatalf("status with an unknown field: %s", out)
	}
	time.Sleep(2 * time.Second)
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("a payload ran a command")
	}
	log, _ := os.ReadFile(filepath.Join(f.StateDir("master-01"), "handler.log"))
	if n := strings.Count(string(log), "deploy event rejected"); n != 5 {
		t.Fatalf("%d rejections logged, want 5:\n%s", n, log)
	}
	for _, id := range []string{"evil-1", "evil-2", "evil-4"} {
		if _, err := os.Stat(filepath.Join(f.StateDir("master-01"), "runs", id)); err == nil {
			t.Fatalf("deploy %s was recorded", id)
		}
	}
}

func TestBadRefFailsSyncAndNoAgentRuns(t *testing.T) {
	f := startRig(t)
	serfCLI(t, f, "event", "-coalesce=false", protocol.EventDeploy, `{"id":"badref","module":"motd","ref":"no-such-branch"}`)
	st := waitPhase(t, f, "master-01", "badref", func(s protocol.Status) bool { return s.Sync == protocol.PhaseFailed })
	if !strings.Contains(st.SyncMsg, "no-such-branch") {
		t.Fatalf("master's message lacks git's: %+v", st)
	}
	if a := status(t, f, "agent-01", "badref"); a.Phase != protocol.PhaseUnknown {
		t.Fatalf("agent-01 after a failed sync: %+v", a)
	}
}

// An operator's own handlers run beside serfdeploy's, through a second
// -event-handler: the shell router (scripts/handler-router.sh).
func TestCustomHandlersFromTheHandlersDir(t *testing.T) {
	f := startRigWith(t, deployrig.Options{OperatorHandlers: true})
	dir := f.HandlersDir("agent-01")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "user-event")
	scripts := map[string]string{
		"query-uptime": "#!/bin/sh\necho \"up on $SERF_SELF_NAME: $(cat)\"\n",
		"user-notify":  "#!/bin/sh\ncat > " + marker + "\n",
	}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := serfCLI(t, f, "query", "-format", "json", "-timeout", "3s", "uptime", "hello")
	var q struct{ Responses map[string]string }
	if err := json.Unmarshal([]byte(out), &q); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(q.Responses["agent-01"]); got != "up on agent-01: hello" {
		t.Fatalf("agent-01 answered %q (all: %v)", got, q.Responses)
	}
	if got := q.Responses["agent-02"]; got != "" {
		t.Fatalf("agent-02 has no handler but answered %q", got)
	}
	serfCLI(t, f, "event", "-coalesce=false", "notify", "deployed v1")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(marker); err == nil && strings.TrimSpace(string(b)) == "deployed v1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("user-notify did not run with the payload")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

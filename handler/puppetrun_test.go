package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

func testNode(t *testing.T, command ...string) *Node {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "node.yaml")
	var b strings.Builder
	b.WriteString("role: agent\nstate_dir: " + filepath.Join(dir, "state") + "\npuppet:\n  json_log: false\n  state_dir: " + filepath.Join(dir, "puppet-state") + "\n  summary_file: " + filepath.Join(dir, "summary.yaml") + "\n  command:\n")
	for _, c := range command {
		b.WriteString("    - " + c + "\n")
	}
	os.WriteFile(cfgPath, []byte(b.String()), 0o644)
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	n, err := NewNode(cfg, cfgPath, func(k string) string {
		return map[string]string{"SERF_SELF_NAME": "agent-01"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func ask(t *testing.T, n *Node, payload string) protocol.RunAnswer {
	t.Helper()
	var out bytes.Buffer
	if err := n.handlePuppetRun(strings.NewReader(payload), &out); err != nil {
		t.Fatal(err)
	}
	var a protocol.RunAnswer
	if err := json.Unmarshal(out.Bytes(), &a); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	return a
}

// A worker that finishes within milliseconds, before the handler that
// started it has returned, must not have its result overwritten by the
// handler's own bookkeeping.
func TestFastWorkerResultIsKept(t *testing.T) {
	n := testNode(t, "/bin/false")
	done := make(chan error, 1)
	finished := make(chan struct{})
	n.worker = func(kind, id string) (int, error) {
		go func() { done <- n.Work(context.Background(), nil, kind, id); close(finished) }()
		// Give the worker every chance to finish before the handler goes
		// on; with the state lock it cannot, and waits for the handler.
		select {
		case <-finished:
		case <-time.After(time.Second):
		}
		return os.Getpid(), nil
	}
	if a := ask(t, n, `{"id":"fast-1"}`); a.Result != protocol.RunStarted {
		t.Fatalf("answer %+v", a)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rec, err := n.st.load("fast-1", KindRun)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Phase != protocol.PhaseFailed || rec.ExitCode == nil || *rec.ExitCode != 1 {
		t.Fatalf("record %+v", rec)
	}
	if a := ask(t, n, `{"id":"fast-1"}`); a.Result != protocol.RunAlready || a.Message != protocol.PhaseFailed {
		t.Fatalf("repeat: %+v", a)
	}
}

func TestPuppetRunAnswers(t *testing.T) {
	n := testNode(t, "/bin/true")
	started := 0
	n.worker = func(kind, id string) (int, error) { started++; return os.Getpid(), nil }

	if a := ask(t, n, `{"id":"r1"}`); a.Result != protocol.RunStarted || started != 1 {
		t.Fatalf("first: %+v", a)
	}
	// r1's worker is "alive" (this test process), so a second run is busy.
	if a := ask(t, n, `{"id":"r2"}`); a.Result != protocol.RunBusy || a.Running != "r1" || started != 1 {
		t.Fatalf("second: %+v", a)
	}
	for _, bad := range []string{`{"id":"r3;rm"}`, `{"id":"r3","env":"x y"}`, `{"id":"r3","extra":1}`, `garbage`} {
		if a := ask(t, n, bad); a.Result != protocol.RunRejected || a.Message == "" {
			t.Fatalf("%s: %+v", bad, a)
		}
	}
	n.st.clearActive("r1")
	os.MkdirAll(n.cfg.Puppet.StateDir, 0o755)
	os.WriteFile(filepath.Join(n.cfg.Puppet.StateDir, "agent_disabled.lock"), []byte(`{"disabled_message":"patching, ask bob"}`), 0o644)
	if a := ask(t, n, `{"id":"r4"}`); a.Result != protocol.RunDisabled || !strings.Contains(a.Message, "patching, ask bob") || started != 1 {
		t.Fatalf("disabled: %+v", a)
	}
}

package handler

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/testkit/puppet"
)

// runReal runs real Puppet the way workRun does and classifies the result.
func runReal(t *testing.T, node *puppet.Node, args []string) (int, outcome, []protocol.FailedResource) {
	t.Helper()
	dir := t.TempDir()
	jsonLog := filepath.Join(dir, "puppet.jsonl")
	outPath := filepath.Join(dir, "puppet.log")
	args = append(args, "--logdest", "console", "--logdest", jsonLog)
	start := time.Now()
	exit, err := runPuppet(context.Background(), nil, args, outPath, 2*time.Minute, func(int) {})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := os.ReadFile(outPath)
	summary, _ := readSummary(node.SummaryFile(), start, "")
	entries := readLogEntries(jsonLog)
	o := classify(exit, summary, entries, string(out), node.StateDir())
	t.Logf("exit %d -> %+v (%s)\n%s", exit, o, time.Since(start).Round(time.Millisecond), puppet.Output(out))
	return exit, o, failedResources(entries)
}

func manifest(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "site.pp")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// agentAgainstNothing is `puppet agent --test` against port 1, where no
// server listens. The disabled check happens before any connection; the
// run lock is taken only after the certificate bootstrap, so "busy" is
// tested against a real server (cmd/serfdeploy's server tests).
func agentAgainstNothing(n *puppet.Node) []string {
	args := n.AgentArgs(&puppet.Server{Port: 1})
	for i, a := range args {
		if a == "{environment}" {
			args[i] = "production"
		}
	}
	return args
}

func TestClassifyRealPuppet(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real Puppet")
	}
	t.Run("changes applied", func(t *testing.T) {
		n := puppet.NewNode(t, "apply-ok")
		exit, o, _ := runReal(t, n, n.ApplyArgs(t.TempDir(), manifest(t, `notify { "hello": }`)))
		if exit != 2 || o.phase != protocol.PhaseFinished {
			t.Fatalf("exit %d %+v", exit, o)
		}
	})
	t.Run("failing resource", func(t *testing.T) {
		n := puppet.NewNode(t, "apply-fail")
		exit, o, failed := runReal(t, n, n.ApplyArgs(t.TempDir(), manifest(t, `exec { "boom": command => "/bin/false" }
notify { "fine": }`)))
		if (exit != 4 && exit != 6) || o.phase != protocol.PhaseFailed || o.reason != protocol.ReasonResourcesFailed {
			t.Fatalf("exit %d %+v", exit, o)
		}
		if len(failed) == 0 || !strings.Contains(failed[0].Resource, "Exec[boom]") || !strings.Contains(failed[0].Message, "returned 1") {
			t.Fatalf("failed resources %+v", failed)
		}
		if !strings.Contains(o.message, "1 of") {
			t.Fatalf("message %q has no count", o.message)
		}
	})
	t.Run("syntax error", func(t *testing.T) {
		n := puppet.NewNode(t, "apply-syntax")
		exit, o, _ := runReal(t, n, n.ApplyArgs(t.TempDir(), manifest(t, `notify { "broken": `)))
		if exit != 1 || o.phase != protocol.PhaseFailed || o.reason != protocol.ReasonCompileError || !strings.Contains(strings.ToLower(o.message), "syntax error") {
			t.Fatalf("exit %d %+v", exit, o)
		}
	})
	t.Run("agent disabled", func(t *testing.T) {
		n := puppet.NewNode(t, "agent-disabled")
		if err := n.Disable("maintenance by alice"); err != nil {
			t.Fatal(err)
		}
		exit, o, _ := runReal(t, n, agentAgainstNothing(n))
		if exit != 1 || o.phase != protocol.PhaseDisabled || !strings.Contains(o.message, "maintenance by alice") {
			t.Fatalf("exit %d %+v", exit, o)
		}
	})
	t.Run("server unreachable", func(t *testing.T) {
		n := puppet.NewNode(t, "agent-unreachable")
		exit, o, _ := runReal(t, n, agentAgainstNothing(n))
		if exit != 1 || o.phase != protocol.PhaseFailed || o.reason != protocol.ReasonServerUnreachable {
			t.Fatalf("exit %d %+v", exit, o)
		}
	})
}

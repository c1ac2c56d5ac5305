package fleetbench

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

// TestStandIn checks the stand-in puppet command the benchmark relies on:
// exit codes, the summary the handler reads, the ground-truth line. Fast,
// so that a plain `go test ./bench/fleet` stays quick.
func TestStandIn(t *testing.T) {
	nodes := []string{"agent-001", "agent-002", "agent-003", "agent-004"}
	runs := deployrig.StandInRuns(1, nodes, 2*time.Second, 10*time.Second)
	again := deployrig.StandInRuns(1, nodes, 2*time.Second, 10*time.Second)
	changed := 0
	for _, n := range nodes {
		r := runs[n]
		if r != again[n] {
			t.Fatalf("%s: %v then %v with the same seed", n, r, again[n])
		}
		if r.Duration < 2*time.Second || r.Duration >= 10*time.Second {
			t.Fatalf("%s: %s outside [2s, 10s)", n, r.Duration)
		}
		if r.Changed {
			changed++
		}
	}
	if other := deployrig.StandInRuns(2, nodes, 2*time.Second, 10*time.Second); other["agent-001"] == runs["agent-001"] && other["agent-002"] == runs["agent-002"] {
		t.Fatal("the seed changes nothing")
	}
	t.Logf("runs: %v (%d changed)", runs, changed)

	dir := t.TempDir()
	si, err := deployrig.WriteStandIn(dir, map[string]deployrig.StandInRun{
		"n1": {Duration: 50 * time.Millisecond, Changed: true},
		"n2": {Duration: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		node string
		exit int
	}{{"n1", 2}, {"n2", 0}, {"n3", 1}} {
		summary := filepath.Join(dir, c.node+".yaml")
		jsonl := filepath.Join(dir, "runs", "id-"+c.node, "puppet.jsonl")
		args := append(si.Command()[1:], "--logdest", "console", "--logdest", jsonl)
		args[1], args[2] = c.node, summary
		before := time.Now()
		out, err := exec.Command(si.Command()[0], args...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.exit {
			t.Fatalf("%s: exit %d, want %d: %s", c.node, code, c.exit, out)
		}
		if c.exit == 1 {
			continue
		}
		if time.Since(before) < 50*time.Millisecond {
			t.Fatalf("%s: did not sleep", c.node)
		}
		b, err := os.ReadFile(summary)
		if err != nil {
			t.Fatal(err)
		}
		// What handler/puppet.go reads.
		var s struct {
			Version struct {
				Config any `yaml:"config"`
			} `yaml:"version"`
			Resources struct {
				Changed, Failed, Total int
			} `yaml:"resources"`
			Time struct {
				Total   float64 `yaml:"total"`
				LastRun int64   `yaml:"last_run"`
			} `yaml:"time"`
		}
		if err := yaml.Unmarshal(b, &s); err != nil {
			t.Fatalf("%s: %v\n%s", c.node, err, b)
		}
		if s.Resources.Changed != c.exit/2 || s.Resources.Failed != 0 || s.Resources.Total != 8 ||
			s.Time.Total != 0.05 || s.Time.LastRun < before.Unix()-1 || s.Version.Config == nil {
			t.Fatalf("%s: summary %+v\n%s", c.node, s, b)
		}
	}
	truth, err := deployrig.ReadTruth(si.Truth)
	if err != nil {
		t.Fatal(err)
	}
	if len(truth) != 2 || truth[0].Node != "n1" || truth[0].Exit != 2 || truth[0].ID != "id-n1" ||
		truth[1].ID != "id-n2" || truth[1].Exit != 0 || truth[0].End.Sub(truth[0].Start) < 50*time.Millisecond {
		t.Fatalf("truth %+v", truth)
	}
}

// standInAgents names n agents (agentName) and writes their stand-in
// Puppet, one run each from standInRuns.
func standInAgents(b *testing.B, n int) ([]string, *deployrig.StandIn) {
	var agents []string
	for i := 1; i <= n; i++ {
		agents = append(agents, agentName(i))
	}
	si, err := deployrig.WriteStandIn(b.TempDir(), standInRuns(agents))
	if err != nil {
		b.Fatal(err)
	}
	return agents, si
}

package render

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/protocol"
)

func TestFleetViewText(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	fig := func(min, avg, max float64) orchestrate.Figures {
		return orchestrate.Figures{Min: min, Avg: avg, Max: max, Nodes: 2}
	}
	rep := &orchestrate.SummaryReport{Filter: "--tag segment=qa", Total: 4, Answered: 3, WithFigures: 2, BySerfdeploy: 1, ByOther: 1,
		LastRunAge: fig(60, 3630, 7200), ConfigRetrieval: fig(0.5, 1.25, 2), RunTime: fig(3, 16.5, 30),
		Resources: orchestrate.ResourceFigures{Total: fig(10, 15, 20), Changed: fig(0, 1, 2), Failed: fig(0, 1.5, 3), OutOfSync: fig(0, 2.5, 5)},
		Oldest:    []orchestrate.NodeNote{{Node: "a2", At: now.Add(-2 * time.Hour).Unix(), Detail: "outside serfdeploy"}},
		Failed:    []orchestrate.NodeNote{{Node: "a2", Detail: "3 of 20 resources failed, outside serfdeploy"}},
		Disabled:  []orchestrate.NodeNote{{Node: "a3", Detail: "puppet agent is disabled: \x1b[31mkernel\x1b[0m upgrade, bob"}},
		NoAnswer:  []orchestrate.NodeNote{{Node: "a4", Detail: "no answer within 5s"}},
	}
	var b bytes.Buffer
	if err := SummaryText(&b, rep, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"4 node(s) matching --tag segment=qa: 3 answered, 2 with Puppet's figures; last runs: 1 by serfdeploy, 1 outside serfdeploy",
		"last run age", "1m0s", "1h0m30s", "2h0m0s", "config retrieval", "0.50s", "16.50s", "out of sync",
		"oldest last runs (1):", "a2  2h0m0s ago, outside serfdeploy", "last run failed (1):", "3 of 20 resources failed",
		"disabled (1):", "kernel upgrade, bob", "no answer (1):", "no answer within 5s"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") || strings.Contains(out, "running now") {
		t.Errorf("summary:\n%s", out)
	}

	b.Reset()
	crep := &orchestrate.CountReport{Total: 4, Running: 1, Idle: 1, Disabled: 1, NoAnswer: 1, Daemon: orchestrate.DaemonCount{Running: 1, Stopped: 2},
		Nodes: []orchestrate.FleetNode{{Node: "a1", State: "running"}, {Node: "a2", State: "idle"}, {Node: "a3", State: "disabled"}, {Node: "a4", State: "no answer"}}}
	if err := CountText(&b, crep); err != nil {
		t.Fatal(err)
	}
	out = b.String()
	for _, want := range []string{"4 node(s)\n", "running    1  a1\n", "idle       1  a2\n", "disabled   1  a3\n", "no answer  1  a4\n", "agent daemon: 1 running, 2 stopped\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("count lacks %q:\n%s", want, out)
		}
	}
}

// status shows Puppet's own last run when it is newer than serfdeploy's,
// and says who made it.
func TestStatusShowsARunOutsideSerfdeploy(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	last := &protocol.Status{ID: "d1", Phase: protocol.PhaseFinished, Finished: now.Add(-time.Hour).Unix(), Applied: "motd=abc"}
	rows := func(st *protocol.Status) string {
		var b bytes.Buffer
		if err := StatusTable(&b, &orchestrate.StatusReport{Nodes: []orchestrate.NodeStatus{{Node: "a1", Status: st}}}, now); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	out := rows(&protocol.Status{Role: "agent", Phase: "idle", Last: last,
		Puppet: &protocol.PuppetState{At: now.Add(-time.Minute).Unix(), Version: "1796606075", Total: 20, Failed: 3, Fail: true, By: protocol.ByOther, Running: true}})
	for _, want := range []string{"running (outside serfdeploy)", "(outside serfdeploy)", "failed", "1m0s", "1796606075",
		"Puppet's own last run, outside serfdeploy: 3 of 20 resources failed; serfdeploy's last: d1 finished"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	// serfdeploy's own run stays as it was.
	out = rows(&protocol.Status{Role: "agent", Phase: "idle", Last: last,
		Puppet: &protocol.PuppetState{At: last.Finished, Total: 20, By: protocol.BySerfdeploy}})
	if !strings.Contains(out, "d1") || !strings.Contains(out, "1h0m0s") || strings.Contains(out, "outside") {
		t.Errorf("status of serfdeploy's own run:\n%s", out)
	}
	out = rows(&protocol.Status{Role: "master", Phase: "idle", Puppet: &protocol.PuppetState{Error: "no /x/last_run_summary.yaml: Puppet has not run here"}})
	if !strings.Contains(out, "Puppet's summary: no /x/last_run_summary.yaml") {
		t.Errorf("status of a node without a summary:\n%s", out)
	}
}

package fleetbench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

// BenchmarkSelect: what a selection on facts and classes (--fact, --class,
// --select) costs at N agents, next to a tag filter that only lists the
// members. Each node's facts command is `cat` of a JSON file (what
// `puppet facts show` prints costs 1.3 s of CPU on each node, in parallel
// on a real fleet; on this machine it would be N times that), so the
// figures are serfdeploy's own: the discovery query, the workers that
// read and keep the facts, the re-ask of the nodes reading them. See
// docs/performance.md:
//
//	go test ./bench/fleet -run '^$' -bench Select -benchtime 1x -timeout 30m -args -n 100
func BenchmarkSelect(b *testing.B) {
	ns, bin := sizesAndBinary(b)
	for _, n := range ns {
		b.Run(fmt.Sprintf("N%d", n), func(b *testing.B) { benchSelect(b, bin, n) })
	}
}

// selectCases: the first --fact finds no facts read (every node answers
// "reading facts" and is asked again); the rest find them kept.
var selectCases = []struct {
	label string
	args  []string
	reps  int
}{
	{"`members --tag role=agent` (tags only: no query)", []string{"members", "--format", "json", "--tag", "role=agent"}, 3},
	{"`status --tag role=agent` (one puppet-status query to every agent, for comparison)", []string{"status", "--format", "json", "--tag", "role=agent"}, 3},
	{"`members --fact role=web`, facts not read yet", []string{"members", "--format", "json", "--fact", "role=web"}, 1},
	{"`members --fact role=web`, facts kept", []string{"members", "--format", "json", "--fact", "role=web"}, 3},
	{"`members --class ntp`", []string{"members", "--format", "json", "--class", "ntp"}, 3},
	{"`members --select '(fact:role=web and class:ntp) or (fact:role=db and not class:ntp)'`", []string{"members", "--format", "json", "--select", "(fact:role=web and class:ntp) or (fact:role=db and not class:ntp)"}, 3},
	{"`run --dry-run --fact role=web` (its line: asked, queries, time)", []string{"run", "--dry-run", "--fact", "role=web", "--tag", "role=agent"}, 1},
}

func benchSelect(b *testing.B, bin string, n int) {
	agents, si := standInAgents(b, n)
	f := startFleet(b, bin, agents, si)
	for i, name := range append([]string{"master"}, agents...) {
		giveFacts(b, f, name, i)
	}
	pids := agentPIDs(f)
	master := f.Cluster.Node("master")
	env := []string{"SERF_RPC_ADDR=" + master.RPCAddr, "NO_COLOR=1"}

	var report strings.Builder
	fmt.Fprintf(&report, "\nN=%d agents and a master (serfdeploy %s):\n\n| command | matched | wall time | CPU of the agents and their handlers |\n|---|---|---|---|\n", n, bin)
	for _, c := range selectCases {
		var walls []time.Duration
		var cpu time.Duration
		matched, note := "", ""
		for range c.reps {
			if alive, waited := waitAlive(master.RPCAddr, n+1, 2*time.Minute); alive != n+1 {
				b.Logf("before %s: %d of %d alive after %s", c.label, alive, n+1, waited)
			}
			cpu0 := agentsCPU(pids)
			t0 := time.Now()
			r := deployrig.Run(b, bin, env, c.args...)
			walls = append(walls, time.Since(t0))
			cpu += agentsCPU(pids) - cpu0
			if r.Code != 0 {
				b.Fatalf("%s: %s", c.label, r)
			}
			matched = countMatched(r.Stdout)
			for _, l := range strings.Split(r.Stderr, "\n") {
				if strings.Contains(l, "match (") {
					note = l
				}
			}
		}
		sort.Slice(walls, func(i, j int) bool { return walls[i] < walls[j] })
		wall := walls[len(walls)/2].Round(time.Millisecond).String()
		if len(walls) > 1 {
			wall = fmt.Sprintf("%s (median of %d; %s to %s)", wall, len(walls), walls[0].Round(time.Millisecond), walls[len(walls)-1].Round(time.Millisecond))
		}
		fmt.Fprintf(&report, "| %s | %s | %s | %s |\n", c.label, matched, wall, (cpu / time.Duration(c.reps)).Round(10*time.Millisecond))
		if note != "" {
			fmt.Fprintf(&report, "\n%s\n\n", strings.TrimSpace(note))
		}
	}
	b.Log(report.String())
	if *flagOut != "" {
		if err := os.WriteFile(*flagOut, []byte(report.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// countMatched reads members' or status's JSON (or a dry run's target
// line).
func countMatched(stdout string) string {
	var doc struct {
		Members []json.RawMessage `json:"members"`
		Nodes   []json.RawMessage `json:"nodes"`
	}
	if json.Unmarshal([]byte(stdout), &doc) == nil {
		return fmt.Sprint(len(doc.Members) + len(doc.Nodes))
	}
	for _, l := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(l, "targets (") {
			n, _, _ := strings.Cut(strings.TrimPrefix(l, "targets ("), ",")
			return n
		}
	}
	return "?"
}

// giveFacts gives node i facts (role web or db, alternately) and classes
// (ntp on every third), read by `cat` instead of `puppet facts show`.
func giveFacts(b *testing.B, f *benchFleet, name string, i int) {
	dir := filepath.Join(f.Dir, "select")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	role := "web"
	if i%2 == 1 {
		role = "db"
	}
	facts := fmt.Sprintf(`{"role":%q,"os":{"family":"Debian","release":{"major":"12"}},"processors":{"count":2}}`, role)
	classes := "settings\nprofile::" + role + "\n"
	if i%3 == 0 {
		classes += "ntp\n"
	}
	factsFile, classesFile := filepath.Join(dir, name+".json"), filepath.Join(dir, name+".classes")
	for path, text := range map[string]string{factsFile: facts, classesFile: classes} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	// The node reads its config on every event: its puppet section gains
	// the facts command and the class file.
	cfg := filepath.Join(f.Dir, "config", name+".yaml")
	text, err := os.ReadFile(cfg)
	if err != nil {
		b.Fatal(err)
	}
	const anchor = "  timeout: 2m\n"
	if !strings.Contains(string(text), anchor) {
		b.Fatalf("%s has no %q", cfg, anchor)
	}
	extra := fmt.Sprintf("  facts_command: [cat, %q]\n  classes_file: %q\n", factsFile, classesFile)
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(text), anchor, anchor+extra, 1)), 0o644); err != nil {
		b.Fatal(err)
	}
}

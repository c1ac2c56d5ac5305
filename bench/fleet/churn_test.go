package fleetbench

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
	"github.com/serfdeploy/serfdeploy/testkit/serfcluster"
)

var (
	flagGap          = flag.Duration("gap", 2*time.Second, "BenchmarkChurn: time between two agents' joins while the fleet forms")
	flagFireAfter    = flag.Duration("fire-after", 2*time.Second, "BenchmarkChurn: time from the last join to the first deploy")
	flagFlap         = flag.Int("flap", 10, "BenchmarkChurn: percentage of the agents that leave and rejoin during the second deploy")
	flagChurnDesigns = flag.String("churn-designs", "serfdeploy,unfiltered,article", "BenchmarkChurn: designs, each on its own fleet")
)

// Designs of BenchmarkChurn: how the nodes register their handler (the
// CLI side is serfdeploy's deploy, or the article's loop for "article").
const (
	churnFiltered   = "serfdeploy" // -event-handler "FILTER=serfdeploy handle": forks for serfdeploy's event and queries only
	churnUnfiltered = "unfiltered" // -event-handler "serfdeploy handle": forks for every event (before issue 22)
	churnArticle    = "article"    // the shell router for every event; its user-deploy and query-* exec serfdeploy handle
	// churnArticleEvent: the article as its text goes: the CLI fires the
	// deploy event, the master's user-deploy installs the code and fires
	// the puppetrun query; the CLI then loops on puppet-status. The node
	// side is "article"'s. ("article" fires puppetrun itself: no master, no
	// code shipped, a run only.)
	churnArticleEvent = "article-event"
	// churnNoID: serfdeploy as filtered, run without --id and without
	// BUILD_TAG, as an operator at a shell runs it: the id is generated,
	// so there is no check of it before the fire (with --id, or an id
	// derived from BUILD_TAG, every node is asked first).
	churnNoID = "serfdeploy-noid"
)

// churnRow is one deploy under churn.
type churnRow struct {
	row
	Scenario string
	Forks    map[string]int // handler runs on all nodes over the scenario, by event type
	Nodes    int            // nodes whose logs were counted
	MaxForks int            // the most handler runs on one node
	Events   map[string]int // user events originated, by name
	Window   time.Duration  // the scenario's length: the fleet's forming and the deploy, or the deploy
	// CPU of the serf agents and the handlers they reaped over the
	// scenario (the detached workers and the stand-ins are not in it).
	CPU time.Duration
}

var churnResults []churnRow

// BenchmarkChurn: a deploy while the fleet changes, for each design on its
// own fleet. First the agents join one by one, -gap apart (the master
// first), and a deploy is fired -fire-after the last join; then, once the
// master sees every agent alive, a second deploy is fired while -flap % of
// the agents leave and rejoin. See docs/performance.md:
//
//	go test ./bench/fleet -run '^$' -bench Churn -benchtime 1x -timeout 30m -args -n 10
func BenchmarkChurn(b *testing.B) {
	ns, bin := sizesAndBinary(b)
	for _, n := range ns {
		for _, design := range strings.Split(*flagChurnDesigns, ",") {
			b.Run(fmt.Sprintf("N%d/%s", n, design), func(b *testing.B) {
				mu.Lock()
				done := false
				for _, r := range churnResults {
					done = done || (r.N == n && r.Design == design)
				}
				mu.Unlock()
				if !done {
					churnN(b, bin, n, design)
				}
			})
		}
	}
	report := renderChurn()
	fmt.Print(report)
	if *flagOut != "" {
		if err := os.WriteFile(*flagOut, []byte(report), 0o644); err != nil {
			b.Error(err)
		}
	}
}

// churnN forms one fleet of n agents for design and runs both scenarios.
func churnN(b *testing.B, bin string, n int, design string) {
	agents, si := standInAgents(b, n)
	f, formed := formFleet(b, bin, design, agents, si)
	master := f.Cluster.Node("master")
	time.Sleep(*flagFireAfter)

	// 1: the deploy right after the fleet formed.
	r := churnDeploy(b, f, bin, design, 1, "join one by one", agents, si, make([]int64, len(agents)+1), map[int]time.Duration{}, nil)
	r.Window = r.exited.Sub(formed)
	record(b, r)

	// 2: once settled, a deploy while some agents leave and rejoin.
	alive, waited := waitAlive(master.RPCAddr, n+1, 2*time.Minute)
	var flapping []*serfcluster.Node
	step := 100 / max(*flagFlap, 1)
	for i := step - 1; i < len(agents) && *flagFlap > 0; i += step {
		flapping = append(flapping, f.Cluster.Node(agents[i]))
	}
	r = churnDeploy(b, f, bin, design, 2, fmt.Sprintf("%d of %d leave and rejoin", len(flapping), n), agents, si, logOffsets(churnLogs(f)), cpuByPID(agentPIDs(f)), flapping)
	if alive != n+1 || waited > 5*time.Second {
		r.Settled = fmt.Sprintf("before it, the master saw %d of %d agents alive after waiting %s", alive, n+1, waited.Round(time.Second))
	}
	r.Window = r.exited.Sub(r.fired)
	record(b, r)
}

func record(b *testing.B, r churnRow) {
	b.Logf("N=%d %s, %s: exit %d, %d/%d runs, accounted %s, %d handler runs on %d nodes %v", r.N, r.Design, r.Scenario,
		r.Exit, r.Ran, r.N, r.Accounted, total(r.Forks), r.Nodes, r.Forks)
	mu.Lock()
	churnResults = append(churnResults, r)
	mu.Unlock()
}

// formFleet starts the master, then the agents one by one, -gap apart, each
// joining the master without waiting for the others to see it. It returns
// when the last agent has started, and the time the first did.
func formFleet(b *testing.B, bin, design string, agents []string, si *deployrig.StandIn) (*benchFleet, time.Time) {
	b.Helper()
	f, specs, pnodes, repo := layOut(b, agents, si, "")
	dir := f.Dir
	opts := serfcluster.Options{Handler: churnHandler(b, bin, design, dir), JoinTimeout: time.Minute}
	start := time.Now()
	f.Cluster = serfcluster.Start(b, opts, specs[0])
	f.writeConfig(b, "master", f.Cluster.Node("master").RPCAddr, pnodes["master"], repo, si)
	for i, s := range specs[1:] {
		if i > 0 {
			time.Sleep(*flagGap)
		}
		n := f.Cluster.StartNode(b, s)
		f.writeConfig(b, s.Name, n.RPCAddr, pnodes[s.Name], repo, si)
	}
	b.Logf("%s: %d agents started one by one in %s", design, len(agents), time.Since(start).Round(time.Second))
	return f, start
}

// churnHandler is the -event-handler of design.
func churnHandler(b *testing.B, bin, design, dir string) string {
	handle := fmt.Sprintf("%s handle --config %s/{name}.yaml", bin, filepath.Join(dir, "config"))
	switch design {
	case churnFiltered, churnNoID:
		return protocol.HandlerFilter() + "=" + handle
	case churnUnfiltered:
		return handle
	case churnArticle, churnArticleEvent:
		handlers := filepath.Join(dir, "article-handlers")
		script := fmt.Sprintf("#!/bin/sh\nexec %s handle --config %s/\"$SERF_SELF_NAME\".yaml\n", bin, filepath.Join(dir, "config"))
		for _, name := range []string{"user-" + protocol.EventDeploy, "query-" + protocol.QueryPuppetRun, "query-" + protocol.QueryPuppetStatus} {
			writeExecutable(b, filepath.Join(handlers, name), script)
		}
		_, file, _, _ := runtime.Caller(0)
		router := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "handler-router.sh")
		// "*=": the command holds a "=", which serf would take for the
		// end of a filter.
		return fmt.Sprintf("*=SERF_HANDLERS_DIR=%s /bin/sh %s", handlers, router)
	}
	b.Fatalf("unknown design %q in -churn-designs", design)
	return ""
}

func writeExecutable(b *testing.B, path, text string) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		b.Fatal(err)
	}
}

func churnLogs(f *benchFleet) []string {
	var logs []string
	for _, n := range f.Cluster.Nodes() {
		logs = append(logs, n.LogPath)
	}
	return logs
}

// churnDeploy fires one deploy of design (offsets: where each agent's log
// stood before the scenario; cpu0: each agent process's CPU then) while the
// flapping agents leave and rejoin, one every 300 ms from the fire on.
func churnDeploy(b *testing.B, f *benchFleet, bin, design string, k int, scenario string, agents []string, si *deployrig.StandIn,
	offsets []int64, cpu0 map[int]time.Duration, flapping []*serfcluster.Node) churnRow {
	master := f.Cluster.Node("master")
	id := fmt.Sprintf("churn-%d-%s-%d", len(agents), design, k)
	var wg sync.WaitGroup
	for i, n := range flapping {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 300 * time.Millisecond)
			n.Stop()
			if err := f.Cluster.Rejoin(n, master); err != nil {
				b.Error(err)
			}
		}()
	}
	var r row
	switch design {
	case churnArticle:
		r = runArticle(b, master.RPCAddr, id, agents, "query")
	case churnArticleEvent:
		r = runArticle(b, master.RPCAddr, id, agents, "event")
	case churnNoID:
		r = runSerfdeploy(b, bin, master.RPCAddr, "", "", agents)
		id = r.id
	default:
		r = runSerfdeploy(b, bin, master.RPCAddr, "", id, agents)
	}
	wg.Wait()
	var cpu time.Duration
	// An agent that left and rejoined is a new process, counted from its
	// start; what the old one used after cpu0 is not in it.
	for pid, c := range cpuByPID(agentPIDs(f)) {
		cpu += c - cpu0[pid]
	}
	r.N, r.Design = len(agents), design
	truth := waitTruth(b, si.Truth, id, len(agents), *flagMax+30*time.Second)
	fillTiming(&r, truth)
	r.Accounted = account(r.Accounted, agents, truth, r.accountStates)
	r.accountStates = nil

	cr := churnRow{row: r, Scenario: scenario, Forks: map[string]int{}, Events: map[string]int{}, CPU: cpu}
	logs := churnLogs(f)
	countLogs(logs, offsets, &cr.row)
	for i, path := range logs {
		runs, err := serfcluster.HandlerRuns(path, offsets[i])
		if err != nil {
			continue
		}
		cr.Nodes++
		cr.MaxForks = max(cr.MaxForks, total(runs))
		for k, v := range runs {
			cr.Forks[k] += v
		}
		countEvents(path, offsets[i], cr.Events)
	}
	return cr
}

var eventSentLine = regexp.MustCompile(`Requesting user event send: ([A-Za-z0-9_-]+)`)

func countEvents(path string, from int64, into map[string]int) {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < from {
		return
	}
	for _, m := range eventSentLine.FindAllSubmatch(b[from:], -1) {
		into[string(m[1])]++
	}
}

// cpuByPID is each process's CPU with its reaped children (agentsCPU).
func cpuByPID(pids []int) map[int]time.Duration {
	out := make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		out[pid] = agentsCPU([]int{pid})
	}
	return out
}

func total(m map[string]int) int {
	t := 0
	for _, v := range m {
		t += v
	}
	return t
}

// renderChurn is BenchmarkChurn's report, one row per deploy.
func renderChurn() string {
	mu.Lock()
	defer mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "\nAgents joined %s apart, the first deploy %s after the last join; the second while %d %% of the agents left and rejoined.\n\n", *flagGap, *flagFireAfter, *flagFlap)
	b.WriteString("| N | design | scenario | exit | nodes accounted | fire → last run started | last run finished → exit | queries sent (puppet-status / puppetrun), events sent | handler runs per node: mean (max) | by event, all nodes | agents+handlers CPU | over |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	var notes []string
	for _, r := range churnResults {
		sent := fmt.Sprintf("%d / %d, %d", r.Sent["puppet-status"], r.Sent["puppetrun"], total(r.Events))
		if r.Polls > 0 {
			sent += fmt.Sprintf(" (%d loop polls)", r.Polls)
		}
		mean := 0.0
		if r.Nodes > 0 {
			mean = float64(total(r.Forks)) / float64(r.Nodes)
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %d | %s | %s | %s | %s | %.1f (%d) | %s | %s | %s |\n", r.N, r.Design, r.Scenario, r.Exit, r.Accounted,
			secs(r.FireToLastStart, r.Ran), secs(r.LastEndToExit, r.Ran), sent, mean, r.MaxForks, byEvent(r.Forks), secs(r.CPU, 1), secs(r.Window, 1))
		if r.FirstErr != "" {
			notes = append(notes, fmt.Sprintf("- N=%d %s, %s: first error line of stderr: `%s`", r.N, r.Design, r.Scenario, strings.ReplaceAll(r.FirstErr, "`", "'")))
		}
		if r.Settled != "" {
			notes = append(notes, fmt.Sprintf("- N=%d %s, %s: %s", r.N, r.Design, r.Scenario, r.Settled))
		}
		if d := dropped(r.Dropped); d != "0" {
			notes = append(notes, fmt.Sprintf("- N=%d %s, %s: dropped %s", r.N, r.Design, r.Scenario, d))
		}
		if r.Ran < r.N {
			notes = append(notes, fmt.Sprintf("- N=%d %s, %s: %d of %d agents ran", r.N, r.Design, r.Scenario, r.Ran, r.N))
		}
	}
	if len(notes) > 0 {
		b.WriteString("\n" + strings.Join(notes, "\n") + "\n")
	}
	return b.String()
}

// byEvent is "member 40, user 2, query 30": handler runs by kind of event.
func byEvent(m map[string]int) string {
	kinds := map[string]int{}
	for k, v := range m {
		if strings.HasPrefix(k, "member-") {
			k = "member"
		}
		kinds[k] += v
	}
	var parts []string
	for k, v := range kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

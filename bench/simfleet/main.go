// Command simfleet runs the real serfdeploy binary against a simulated serf
// agent with a fleet of N members (testkit/serfsim) and prints, as a
// Markdown table, what a whole deploy cost the CLI and whether it got every
// node right.
//
//	go run ./bench/simfleet -n 1000,2000
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/serfdeploy/serfdeploy/testkit/serfsim"
)

type options struct {
	sizes   []int
	masters int
	bin     string
	scale   float64
	fail    float64
	loss    float64
	seed    uint64
	done    bool
}

func main() {
	var o options
	var sizes string
	flag.StringVar(&sizes, "n", "1000,2000", "fleet sizes (agents), comma-separated")
	flag.IntVar(&o.masters, "masters", 1, "puppet masters")
	flag.StringVar(&o.bin, "bin", "", "serfdeploy binary (default: build ./cmd/serfdeploy into a temporary directory)")
	flag.Float64Var(&o.scale, "scale", 1.0, "time scale of syncs and runs (runs take 2-10 s at 1.0)")
	flag.Float64Var(&o.fail, "fail", 0, "fraction of agents whose run fails (exit 6)")
	flag.Float64Var(&o.loss, "loss", 0, "fraction of query deliveries lost")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the simulation")
	flag.BoolVar(&o.done, "done-events", false, "nodes fire a puppet-done user event when their run ends")
	flag.Parse()
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fatalf("-n: %q is not a fleet size", s)
		}
		o.sizes = append(o.sizes, n)
	}
	if o.bin == "" {
		dir, err := os.MkdirTemp("", "simfleet-")
		if err != nil {
			fatalf("%v", err)
		}
		defer os.RemoveAll(dir)
		o.bin = filepath.Join(dir, "serfdeploy")
		fmt.Fprintln(os.Stderr, "building serfdeploy...")
		cmd := exec.Command("go", "build", "-o", o.bin, "github.com/serfdeploy/serfdeploy/cmd/serfdeploy")
		if out, err := cmd.CombinedOutput(); err != nil {
			fatalf("go build: %v\n%s", err, out)
		}
	}

	var rows []row
	for _, n := range o.sizes {
		fmt.Fprintf(os.Stderr, "deploying to %d agents...\n", n)
		rows = append(rows, deploy(o, n))
		runtime.GC()
	}
	printReport(os.Stdout, o, rows)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "simfleet: "+format+"\n", args...)
	os.Exit(1)
}

// row is one deploy's measurements.
type row struct {
	n          int
	exit       int
	wantExit   int
	wall       time.Duration
	lag        time.Duration // from the last run's end to the CLI's exit
	runsOver   bool          // every run had ended when the CLI exited
	cpu        time.Duration
	rssKiB     int64
	stats      serfsim.Stats
	matched    int
	agents     int
	mismatches []string // a few, for the notes
	outcome    string
	stderr     string
	problem    string // the CLI could not be run or its output not read
}

// result is the part of the CLI's JSON result checked here.
type result struct {
	ID      string `json:"id"`
	Outcome string `json:"outcome"`
	Error   string `json:"error"`
	Nodes   []struct {
		Node  string `json:"node"`
		State string `json:"state"`
	} `json:"nodes"`
}

// deploy runs one whole deploy of the CLI against a fresh fleet of n agents.
func deploy(o options, n int) row {
	r := row{n: n}
	fleet := serfsim.NewFleet(serfsim.Config{
		Masters: o.masters, Agents: n, Seed: o.seed, TimeScale: o.scale,
		FailRate: o.fail, LossRate: o.loss, FireDone: o.done,
	})
	defer fleet.Close()
	srv, err := serfsim.Listen("127.0.0.1:0", fleet, "")
	if err != nil {
		r.problem = err.Error()
		return r
	}
	defer srv.Close()

	// The CLI's own --timeout is 10m; this only stops a hung one.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.bin, "deploy", "--module", "motd", "--ref", "v1",
		"--rpc-addr", srv.Addr(), "--format", "json", "--timeout", "10m")
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	exited := time.Now()
	r.wall = exited.Sub(start)
	r.stderr = stderr.String()
	if cmd.ProcessState == nil {
		r.problem = fmt.Sprintf("could not run %s: %v", o.bin, err)
		return r
	}
	r.exit = cmd.ProcessState.ExitCode()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		r.rssKiB = ru.Maxrss // KiB on Linux
	}
	r.stats = fleet.Stats()

	var res result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		r.problem = fmt.Sprintf("the CLI's stdout is not its JSON result (%v): %q", err, tail(stdout.String(), 300))
	}
	r.outcome = res.Outcome
	if res.Error != "" {
		r.outcome = res.Error
	}
	id := res.ID
	if ids := fleet.Deploys(); id == "" && len(ids) == 1 {
		id = ids[0]
	}
	// A CLI that gave up early is compared with the runs the deploy went on
	// to have: wait for every master's trigger.
	wait, cancelWait := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelWait()
	if err := fleet.WaitTriggered(wait, id); err != nil {
		r.problem = "the simulated masters never triggered the runs"
	}
	account(&r, fleet, id, res, exited)
	return r
}

// account compares every simulated agent's state with the CLI's result.
func account(r *row, fleet *serfsim.Fleet, id string, res result, exited time.Time) {
	want := map[string]string{}
	var lastEnd time.Time
	for _, run := range fleet.Runs(id) {
		want[run.Node] = run.Phase
		if run.Phase == "failed" {
			r.wantExit = 1
		}
		if run.End.After(lastEnd) && run.Phase != "skipped" {
			lastEnd = run.End
		}
	}
	got := map[string]string{}
	for _, n := range res.Nodes {
		got[n.Node] = n.State
	}
	agents := fleet.Agents()
	r.agents = len(agents)
	for _, a := range agents {
		w, ok := want[a]
		if !ok {
			w = "(no run)"
			r.wantExit = 1
		}
		g, ok := got[a]
		if !ok {
			g = "(absent)"
		}
		if g == w {
			r.matched++
		} else if len(r.mismatches) < 3 {
			r.mismatches = append(r.mismatches, fmt.Sprintf("%s: CLI %s, simulated %s", a, g, w))
		}
	}
	r.runsOver = !lastEnd.IsZero() && !lastEnd.After(exited)
	r.lag = exited.Sub(lastEnd)
}

// cleanEnv is this process's environment without what would change the
// CLI's behaviour: serf and logging-service settings, Jenkins' build ids.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "SERF_") || strings.HasPrefix(k, "SERFDEPLOY_") ||
			k == "BUILD_TAG" || k == "BUILD_URL" || k == "JOB_NAME" {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func printReport(w *os.File, o options, rows []row) {
	fmt.Fprintf(w, "serfdeploy deploy against a simulated serf agent: %d master(s), time scale %g, fail rate %g, query loss %g, seed %d; %d CPU(s) shared by the CLI and the simulator.\n\n",
		o.masters, o.scale, o.fail, o.loss, o.seed, runtime.NumCPU())
	fmt.Fprintln(w, "| agents | exit (expected) | wall | last run end → CLI exit | CLI CPU (user+sys) | CLI peak RSS | queries sent (refused) | responses dropped (size) | nodes accounted for |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		if r.problem != "" && r.wall == 0 {
			fmt.Fprintf(w, "| %d | not run: %s | | | | | | | |\n", r.n, r.problem)
			continue
		}
		lag := fmt.Sprintf("%.1f s", r.lag.Seconds())
		if !r.runsOver {
			lag = "n/a: runs still going"
		}
		fmt.Fprintf(w, "| %d | %d (%d) | %.1f s | %s | %.2f s | %.1f MiB | %d (%d) | %d | %d/%d |\n",
			r.n, r.exit, r.wantExit, r.wall.Seconds(), lag, r.cpu.Seconds(), float64(r.rssKiB)/1024,
			r.stats.Queries, r.stats.QueriesRefused, r.stats.ResponsesDropped, r.matched, r.agents)
	}
	for _, r := range rows {
		if r.exit == r.wantExit && r.matched == r.agents && r.problem == "" {
			continue
		}
		fmt.Fprintf(w, "\n**%d agents**: exit %d, expected %d; %d of %d agents in the state the simulator gave them.\n", r.n, r.exit, r.wantExit, r.matched, r.agents)
		if r.problem != "" {
			fmt.Fprintf(w, "- %s\n", r.problem)
		}
		if r.outcome != "" {
			fmt.Fprintf(w, "- outcome: %s\n", r.outcome)
		}
		for _, m := range r.mismatches {
			fmt.Fprintf(w, "- %s\n", m)
		}
		fmt.Fprintf(w, "- largest query %d bytes (serf's limit %d); queries by name: %s\n", r.stats.LargestQuery, serfsim.QuerySizeLimit, byName(r.stats.QueriesByName))
		if s := tail(r.stderr, 1500); s != "" {
			fmt.Fprintf(w, "- stderr (tail):\n\n```\n%s\n```\n", s)
		}
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		fmt.Fprintf(w, "%d agents: queries by name %s; %d acks, %d responses, %d late, %d deliveries lost; %d events (%d refused)\n",
			r.n, byName(r.stats.QueriesByName), r.stats.Acks, r.stats.Responses, r.stats.ResponsesLate, r.stats.DeliveriesLost, r.stats.Events, r.stats.EventsRefused)
	}
}

func byName(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// tail is the end of s, at most n bytes, from a line start.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "…\n" + s
}

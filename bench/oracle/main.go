// Command oracle is a truth oracle for serfdeploy: randomised fault
// campaigns against a real cluster (serf agents on loopback whose event
// handler is `serfdeploy handle`, a stand-in Puppet that records what each
// node really ran). Each scenario deploys with the real CLI while 1-3
// faults drawn at random happen (failing, hanging and hostile runs,
// SIGKILLed targets and workers, a target leaving, a node joining, a
// concurrent deploy of the module, the CLI's agent restarted, the logging
// service stopped); then the CLI's exit code and per-node states are
// compared with the ground truth. See docs/oracle.md.
//
//	go run ./bench/oracle -n 100 -seed 1 -agents 4
//	go run ./bench/oracle -seed 1 -agents 4 -only 17     # replay scenario 17
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
	"github.com/serfdeploy/serfdeploy/testkit/loki"
)

type config struct {
	Cases     []caseKey // the scenarios to play, in order
	Agents    int
	MaxFaults int
	Pool      []string
	Loki      string // auto, on, off
	Bin       string
	Duration  time.Duration // 0: no limit; else no new scenario after it
	Evidence  string        // where disagreeing scenarios' evidence goes ("": a new temporary directory)
	Verbose   bool
	Stop      <-chan struct{} // closed: no new scenario
}

func main() {
	var cfg config
	var n, only int
	var faults string
	var seed int64
	var out string
	flag.IntVar(&n, "n", 100, "scenarios to run (1..n)")
	flag.Int64Var(&seed, "seed", 1, "campaign seed; scenario N of a seed is always drawn the same")
	flag.IntVar(&only, "only", 0, "run only scenario N of the seed (a replay)")
	flag.IntVar(&cfg.Agents, "agents", 4, "agents in the cluster (3-6), besides the master, the CLI's node and the node that joins")
	flag.IntVar(&cfg.MaxFaults, "max-faults", 3, "each scenario draws 1..max-faults faults")
	flag.StringVar(&faults, "faults", strings.Join(allFaults, ","), "the fault pool")
	flag.StringVar(&cfg.Loki, "loki", "auto", "logging service: on (Loki from scripts/build-loki.sh or $SERFDEPLOY_LOKI), off, or auto (on when the binary is there)")
	flag.StringVar(&cfg.Bin, "bin", "", "serfdeploy binary (default: build ./cmd/serfdeploy)")
	flag.DurationVar(&cfg.Duration, "duration", 0, "start no scenario after this much wall time (0: no limit)")
	flag.StringVar(&cfg.Evidence, "evidence", "", "directory for the evidence of disagreeing scenarios (default: a new temporary directory)")
	flag.StringVar(&out, "out", "", "also write the report to this file")
	flag.BoolVar(&cfg.Verbose, "v", false, "log the harness's steps")
	flag.Parse()
	if only > 0 {
		cfg.Cases = []caseKey{{uint64(seed), only}}
	} else {
		for i := 1; i <= n; i++ {
			cfg.Cases = append(cfg.Cases, caseKey{uint64(seed), i})
		}
	}
	for _, f := range strings.Split(faults, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if index(allFaults, f) < 0 {
			fatalf("-faults: unknown fault %q (known: %s)", f, strings.Join(allFaults, ", "))
		}
		cfg.Pool = append(cfg.Pool, f)
	}
	if cfg.Agents < 2 || cfg.Agents > 20 {
		fatalf("-agents %d: want 2..20", cfg.Agents)
	}
	if cfg.MaxFaults < 1 {
		fatalf("-max-faults %d: want at least 1", cfg.MaxFaults)
	}

	// First signal: finish the scenario under way and report; second: now.
	stop := make(chan struct{})
	cfg.Stop = stop
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "oracle: stopping after this scenario (again to stop now)")
		close(stop)
		<-sigs
		os.Exit(130)
	}()

	rep, err := campaign(cfg, os.Stderr)
	if rep != nil {
		text := rep.render()
		fmt.Print(text)
		if out != "" {
			if werr := os.WriteFile(out, []byte(text), 0o644); werr != nil {
				fmt.Fprintln(os.Stderr, "oracle:", werr)
			}
		}
	}
	if err != nil {
		fatalf("%v", err)
	}
	if rep.failing() {
		os.Exit(1)
	}
}

// failing: the campaign found what a pipeline cannot live with, a false
// green or a --result-file that contradicts the exit code.
func (rep *report) failing() bool {
	return rep.count(kindFalseGreen) > 0 || rep.count(kindMismatch) > 0
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "oracle: "+format+"\n", args...)
	os.Exit(2)
}

// lokiBinary finds Loki as the tests do, or "".
func lokiBinary() string {
	path, err := loki.FindBinary()
	if err != nil {
		return ""
	}
	return path
}

// caseKey names one scenario: scenario Num of seed Seed.
type caseKey struct {
	Seed uint64
	Num  int
}

type report struct {
	Cfg      config
	Outcomes []*outcome
	Wall     time.Duration
	Loki     bool
	Rebuilds []string
	Evidence string
	Pool     []string // the pool played: -faults without what this run cannot do
}

// campaign plays the scenarios on one cluster, reset between them.
func campaign(cfg config, progress io.Writer) (*report, error) {
	begin := time.Now()
	rep := &report{Cfg: cfg}
	defer func() { rep.Wall = time.Since(begin) }()
	switch cfg.Loki {
	case "on":
		if lokiBinary() == "" {
			return nil, errors.New("-loki on: no Loki binary; run scripts/build-loki.sh (or set SERFDEPLOY_LOKI)")
		}
		rep.Loki = true
	case "auto":
		rep.Loki = lokiBinary() != ""
	case "off":
	default:
		return nil, fmt.Errorf("-loki %q: want auto, on or off", cfg.Loki)
	}
	var pool []string
	for _, f := range cfg.Pool {
		if f != fLokiDown || rep.Loki {
			pool = append(pool, f)
		}
	}
	if len(pool) == 0 {
		return nil, errors.New("the fault pool is empty")
	}
	rep.Pool = pool

	dir, err := os.MkdirTemp("", "oracle-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := cfg.Bin
	if bin == "" {
		fmt.Fprintln(progress, "oracle: building serfdeploy")
		if bin, err = deployrig.BuildBinary(dir); err != nil {
			return nil, err
		}
	}
	build := 0
	start := func() (*cluster, error) {
		build++
		fmt.Fprintf(progress, "oracle: starting a cluster: 1 master, %d agents, the CLI's node%s\n", cfg.Agents, map[bool]string{true: ", Loki", false: ""}[rep.Loki])
		return newCluster(filepath.Join(dir, fmt.Sprintf("cluster-%d", build)), bin, cfg.Agents, rep.Loki, cfg.Verbose)
	}
	c, err := start()
	if err != nil {
		return rep, err
	}
	defer func() { c.stop() }()
	for i, k := range cfg.Cases {
		if stopped(cfg.Stop) || (cfg.Duration > 0 && time.Since(begin) > cfg.Duration) {
			break
		}
		s := draw(k.Seed, k.Num, c.agents, pool, cfg.MaxFaults)
		o := c.run(s)
		rep.Outcomes = append(rep.Outcomes, o)
		fmt.Fprintf(progress, "oracle: [%d/%d %s] seed %d scenario %d: %s\n", i+1, len(cfg.Cases), time.Since(begin).Round(time.Second), k.Seed, k.Num, o.line())
		if o.disagrees() || o.Err != "" {
			if err := rep.keep(c, o); err != nil {
				fmt.Fprintln(progress, "oracle: evidence:", err)
			}
		}
		if err := c.reset(); err != nil {
			rep.Rebuilds = append(rep.Rebuilds, fmt.Sprintf("after seed %d scenario %d: %v", k.Seed, k.Num, err))
			fmt.Fprintf(progress, "oracle: reset after seed %d scenario %d failed (%v): a new cluster\n", k.Seed, k.Num, err)
			c.stop()
			if c, err = start(); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

func stopped(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// line is the scenario's progress line.
func (o *outcome) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", o.S.faultList())
	for _, v := range o.Verdicts {
		fmt.Fprintf(&b, " | %s exit %d (want %s)", v.Label, v.Code, v.Want)
		if v.Kind != "" {
			fmt.Fprintf(&b, " %s", strings.ToUpper(v.Kind))
		}
		if v.Mismatch != "" {
			fmt.Fprintf(&b, " %s", strings.ToUpper(kindMismatch))
		}
		if n := len(v.issues()); n > 0 {
			fmt.Fprintf(&b, " %d per-node", n)
		}
	}
	if o.Err != "" {
		fmt.Fprintf(&b, " | harness: %s", o.Err)
	}
	fmt.Fprintf(&b, " | %.1fs", o.Took.Seconds())
	return b.String()
}

// keep writes a disagreeing scenario's evidence.
func (rep *report) keep(c *cluster, o *outcome) error {
	if rep.Evidence == "" {
		rep.Evidence = rep.Cfg.Evidence
		if rep.Evidence == "" {
			d, err := os.MkdirTemp("", "oracle-evidence-")
			if err != nil {
				return err
			}
			rep.Evidence = d
		}
		if err := os.MkdirAll(rep.Evidence, 0o755); err != nil {
			return err
		}
	}
	s := o.S
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d scenario %d\nreplay: %s\nfaults: %s\n", s.Seed, s.Num, rep.replay(s.Seed, s.Num), s.faultList())
	fmt.Fprintf(&b, "A: %s ref %s (%s) filter %s targets %v timeout %s\n", s.IDA, s.RefA, short(c.commits[s.RefA]), s.FilterA, s.A, s.Timeout)
	if s.IDB != "" {
		fmt.Fprintf(&b, "B: %s ref %s (%s) filter %s targets %v\n", s.IDB, s.RefB, short(c.commits[s.RefB]), s.FilterB, s.B)
	}
	for _, v := range o.Verdicts {
		fmt.Fprintf(&b, "\nverdict %s: exit %d, want %s, %s\n", v.Label, v.Code, v.Want, v.Kind)
		if v.Mismatch != "" {
			fmt.Fprintf(&b, "  --result-file mismatch: %s\n", v.Mismatch)
		}
		for _, t := range v.Targets {
			fmt.Fprintf(&b, "  %s: truth %s (%s); CLI %s; %s\n", t.Node, t.Class, t.Detail, t.State, t.Issue)
		}
	}
	runs, _ := readRuns(c.starts, c.truth)
	b.WriteString("\nground truth (stand-in runs):\n")
	for _, id := range []string{s.IDA, s.IDB} {
		var nodes []string
		for n := range runs[id] {
			nodes = append(nodes, n)
		}
		sort.Strings(nodes)
		for _, n := range nodes {
			for _, r := range runs[id][n] {
				end := "never ended"
				if r.Ended {
					end = fmt.Sprintf("ended %s exit %d", clock(r.End), r.Exit)
				}
				fmt.Fprintf(&b, "  %s %s: started %s pid %d motd=%s, %s\n", id, n, clock(r.Start), r.PID, short(r.Commit), end)
			}
		}
	}
	for _, cr := range []struct {
		label string
		r     *cliRun
	}{{"A", o.A}, {"B", o.B}, {"A/watch", o.Watch}} {
		if cr.r == nil {
			continue
		}
		fmt.Fprintf(&b, "\n--- CLI %s: serfdeploy %s\nstarted %s, exited %s, exit %d\n--- stdout\n%s\n--- stderr\n%s\n",
			cr.label, strings.Join(cr.r.Args, " "), clock(cr.r.Start), clock(cr.r.Exited), cr.r.Code, cr.r.Stdout.String(), cr.r.Stderr.String())
		fmt.Fprintf(&b, "--- --result-file %s", cr.r.ResultFile)
		if cr.r.FileErr != "" {
			fmt.Fprintf(&b, " (%s)", cr.r.FileErr)
		}
		fmt.Fprintf(&b, "\n%s\n", cr.r.FileRaw)
	}
	b.WriteString("\n--- handler.log lines of the deploy ids\n")
	for _, name := range c.order {
		data, _ := os.ReadFile(filepath.Join(c.stateDir(name), "handler.log"))
		for _, l := range strings.Split(string(data), "\n") {
			if strings.Contains(l, s.IDA) {
				fmt.Fprintf(&b, "%s\n", l)
			}
		}
	}
	path := filepath.Join(rep.Evidence, fmt.Sprintf("seed-%d-scenario-%d.txt", s.Seed, s.Num))
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func (rep *report) count(kind string) int {
	n := 0
	for _, o := range rep.Outcomes {
		for _, v := range o.Verdicts {
			if v.Kind == kind || (kind == kindMismatch && v.Mismatch != "") {
				n++
			}
		}
	}
	return n
}

// replay is the command that plays scenario num again.
func (rep *report) replay(seed uint64, num int) string {
	cfg := rep.Cfg
	args := []string{"go run ./bench/oracle", fmt.Sprintf("-seed %d", seed), fmt.Sprintf("-agents %d", cfg.Agents)}
	if cfg.MaxFaults != 3 {
		args = append(args, fmt.Sprintf("-max-faults %d", cfg.MaxFaults))
	}
	if len(cfg.Pool) > 0 && strings.Join(cfg.Pool, ",") != strings.Join(allFaults, ",") {
		args = append(args, "-faults "+strings.Join(cfg.Pool, ","))
	}
	args = append(args, "-loki "+map[bool]string{true: "on", false: "off"}[rep.Loki], fmt.Sprintf("-only %d", num))
	return strings.Join(args, " ")
}

// seeds names the seeds played.
func (rep *report) seeds() string {
	var list []string
	seen := map[uint64]bool{}
	for _, k := range rep.Cfg.Cases {
		if !seen[k.Seed] {
			seen[k.Seed] = true
			list = append(list, fmt.Sprint(k.Seed))
		}
	}
	if len(list) == 1 {
		return "seed " + list[0]
	}
	return "seeds " + strings.Join(list, ", ")
}

// render is the Markdown report.
func (rep *report) render() string {
	var b strings.Builder
	deploys, issues, errs := 0, 0, 0
	exits := map[int]int{}
	drawn, injected, bad := map[string]int{}, map[string]int{}, map[string]int{}
	for _, o := range rep.Outcomes {
		if o.Err != "" {
			errs++
		}
		for _, v := range o.Verdicts {
			deploys++
			issues += len(v.issues())
			if v.Label == "A" {
				exits[v.Code]++
			}
		}
		for _, f := range o.S.Faults {
			drawn[f.Kind]++
			if f.Injected {
				injected[f.Kind]++
			}
			if o.disagrees() {
				bad[f.Kind]++
			}
		}
	}
	loki := "off"
	if rep.Loki {
		loki = "on"
	}
	fmt.Fprintf(&b, "\n## Truth oracle: %s, %d agents, up to %d faults per scenario, Loki %s\n\n", rep.seeds(), rep.Cfg.Agents, rep.Cfg.MaxFaults, loki)
	b.WriteString("| scenarios | deploys judged | false greens | false reds | wrong codes | mismatches | per-node disagreements | harness errors | wall time |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| %d | %d | %d | %d | %d | %d | %d | %d | %s |\n\n", len(rep.Outcomes), deploys,
		rep.count(kindFalseGreen), rep.count(kindFalseRed), rep.count(kindWrongCode), rep.count(kindMismatch), issues, errs, rep.Wall.Round(time.Second))
	b.WriteString("| fault | drawn | injected | in a scenario with a disagreement |\n|---|---|---|---|\n")
	for _, f := range allFaults {
		if drawn[f] > 0 {
			fmt.Fprintf(&b, "| %s | %d | %d | %d |\n", f, drawn[f], injected[f], bad[f])
		}
	}
	var codes []int
	for c := range exits {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d ×%d", c, exits[c]))
	}
	fmt.Fprintf(&b, "\nExit codes of the faulted deploys: %s.\n", strings.Join(parts, ", "))
	if len(rep.Rebuilds) > 0 {
		fmt.Fprintf(&b, "\nCluster rebuilt %d time(s): %s\n", len(rep.Rebuilds), strings.Join(rep.Rebuilds, "; "))
	}

	var lines []string
	for _, o := range rep.Outcomes {
		head := fmt.Sprintf("seed %d scenario %d", o.S.Seed, o.S.Num)
		replay := fmt.Sprintf("`%s`", rep.replay(o.S.Seed, o.S.Num))
		if o.Err != "" {
			lines = append(lines, fmt.Sprintf("- %s: harness error: %s; faults: %s; replay: %s", head, o.Err, o.S.faultList(), replay))
		}
		for _, v := range o.Verdicts {
			if v.Kind != "" {
				lines = append(lines, fmt.Sprintf("- %s: **%s**, deploy %s (%s): %s; faults: %s; %s; replay: %s",
					head, v.Kind, v.Label, v.ID, v.Why, o.S.faultList(), v.truthLine(), replay))
			}
			if v.Mismatch != "" {
				lines = append(lines, fmt.Sprintf("- %s: **%s**, deploy %s (%s): %s; faults: %s; replay: %s",
					head, kindMismatch, v.Label, v.ID, v.Mismatch, o.S.faultList(), replay))
			}
			for _, t := range v.issues() {
				lines = append(lines, fmt.Sprintf("- %s: per-node, deploy %s (%s), %s: %s; faults: %s; replay: %s",
					head, v.Label, v.ID, t.Node, t.Issue, o.S.faultList(), replay))
			}
		}
	}
	if len(lines) == 0 {
		b.WriteString("\nNo disagreement.\n")
	} else {
		b.WriteString("\n### Disagreements\n\n")
		b.WriteString(strings.Join(lines, "\n") + "\n")
		if rep.Evidence != "" {
			fmt.Fprintf(&b, "\nEvidence (CLI output, ground truth, handler logs) in %s\n", rep.Evidence)
		}
	}
	return b.String()
}

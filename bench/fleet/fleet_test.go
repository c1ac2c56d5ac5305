package fleetbench

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

var (
	flagN       = flag.String("n", "10", "comma-separated fleet sizes: agents, plus one master")
	flagSeed    = flag.Int64("seed", 1, "seed of the per-node run lengths")
	flagMin     = flag.Duration("min", 2*time.Second, "shortest stand-in run")
	flagMax     = flag.Duration("max", 10*time.Second, "longest stand-in run")
	flagBound   = flag.Duration("bound", 3*time.Minute, "longest one design may run for one N (the CLI's --timeout, the loop's deadline)")
	flagDesigns = flag.String("designs", "serfdeploy,article", "designs to run for each N, in this order")
	flagOut     = flag.String("out", "", "also write the Markdown report to this file")
	flagBin     = flag.String("bin", "", "a serfdeploy binary to use instead of building ./cmd/serfdeploy")
	flagKeep    = flag.String("keep", "", "keep each command's stdout and stderr in this directory")
	flagLoki    = flag.Bool("loki", false, "run a Loki: the nodes report to it and serfdeploy reads the final statuses from it (--log-url)")
	flagFail    = flag.Int("fail-long", 0, "every Nth agent fails with an Error line of 600-5000 bytes, so that its answer must be cut to serf's encoded limit (0: none)")
)

const idleWindow = 10 * time.Second

const (
	designSerfdeploy = "serfdeploy"
	designArticle    = "article"
)

// row is one (N, design) measurement.
type row struct {
	N      int
	Design string
	Ran    int // targets with a run of this id in the ground truth

	FireToLastStart time.Duration // fire → the last run's start (ground truth)
	LastEndToExit   time.Duration // the last run's end (ground truth) → the command's exit
	Total           time.Duration // fire → exit

	Sent       map[string]int // queries originated, by name ("Requesting query send" in the agents' logs)
	Deliveries int            // handler runs for queries ("Received event: query" in the agents' logs)
	Polls      int            // article: loop iterations
	Dropped    map[string]int // by message, CLI stderr and agents' logs together

	CPU    time.Duration // the command's user+system CPU (with its reaped children)
	MaxRSS int64         // KiB, the command's (or its largest child's) peak RSS
	Exit   int

	Accounted string // the command's per-node outcome against the ground truth

	AgentsCPU   time.Duration // serf agents plus the handlers they reaped, over the design
	MachineBusy float64       // fraction of both cores busy over the design
	FirstErr    string        // first error line of the command's stderr
	Note        string
	Settled     string       // set when the fleet was not all alive before the design
	Phases      *startPhases // serfdeploy: where the start went

	id            string
	fired, exited time.Time
	accountStates map[string]string // node → state (serfdeploy) or phase (article), as the command saw it
}

// fleetInfo is what starting one fleet cost.
type fleetInfo struct {
	N          int
	Start      time.Duration
	AgentsRSS  int64   // KiB, all serf agents after the start
	AgentsRSS2 int64   // KiB, all serf agents after the designs
	MemAvail   int64   // KiB, MemAvailable before the start
	IdleAgents float64 // cores used by the serf agents (and handlers) over idleWindow before the designs
	IdleBusy   float64 // fraction of the machine busy over the same window
	Err        string
}

var (
	mu      sync.Mutex
	results = map[int][]row{}
	infos   = map[int]*fleetInfo{}
)

// standInRuns is each agent's stand-in run (-seed, -min, -max), every
// -fail-long'th one failing with an answer that must be cut to serf's limit.
func standInRuns(agents []string) map[string]deployrig.StandInRun {
	runs := deployrig.StandInRuns(*flagSeed, agents, *flagMin, *flagMax)
	if *flagFail > 0 {
		for i, a := range agents {
			if i%*flagFail == 0 {
				r := runs[a]
				r.FailBytes = 600 + (i*317)%4400
				runs[a] = r
			}
		}
	}
	return runs
}

// sizesAndBinary reads -n and -bin; without -bin it builds serfdeploy.
func sizesAndBinary(b *testing.B) ([]int, string) {
	ns, err := parseNs(*flagN)
	if err != nil {
		b.Fatal(err)
	}
	bin := *flagBin
	if bin == "" {
		if bin, err = deployrig.BuildBinary(b.TempDir()); err != nil {
			b.Fatal(err)
		}
	}
	return ns, bin
}

// BenchmarkFleet: see doc.go. Each N starts its own fleet, runs every
// design once (whatever b.N is) and stops the fleet.
func BenchmarkFleet(b *testing.B) {
	ns, bin := sizesAndBinary(b)
	for _, n := range ns {
		// No "=" in the name: it ends up in the temp dirs, hence in serf's
		// -event-handler, which reads "EVENT=script".
		ok := b.Run(fmt.Sprintf("N%d", n), func(b *testing.B) {
			mu.Lock()
			_, done := infos[n]
			mu.Unlock()
			if !done {
				benchN(b, bin, n)
			}
			if b.Failed() {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range results[n] {
				b.ReportMetric(r.Total.Seconds(), "s-"+r.Design)
			}
		})
		if !ok {
			// A fleet that did not start (agents that did not join) is the
			// ceiling: a larger one will not start either.
			break
		}
	}
	report := renderReport(ns)
	fmt.Print(report)
	if *flagOut != "" {
		if err := os.WriteFile(*flagOut, []byte(report), 0o644); err != nil {
			b.Error(err)
		}
	}
}

func parseNs(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-n %q: want comma-separated positive sizes", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func agentName(i int) string { return fmt.Sprintf("agent-%03d", i) }

// benchN starts a master and n agents and runs the designs.
func benchN(b *testing.B, bin string, n int) {
	info := &fleetInfo{N: n, MemAvail: memAvailable()}
	mu.Lock()
	infos[n] = info
	mu.Unlock()

	agents, si := standInAgents(b, n)

	// A start that fails (agents that do not join) is a result too: record it
	// before serfcluster fails the benchmark.
	info.Err = fmt.Sprintf("the fleet did not start (see the log above; MemAvailable before: %d MiB)", info.MemAvail/1024)
	t0 := time.Now()
	f := startFleet(b, bin, agents, si)
	info.Start, info.Err = time.Since(t0), ""
	pids := agentPIDs(f)
	info.AgentsRSS = sumRSS(pids)
	b.Logf("N=%d: %d serf agents started and joined in %s, %d MiB RSS in all", n, len(pids), info.Start.Round(time.Millisecond), info.AgentsRSS/1024)
	if len(pids) != n+1 {
		b.Logf("found %d serf agent processes, want %d: agents' CPU is partial", len(pids), n+1)
	}
	// What the fleet costs doing nothing: gossip, probes, member events.
	cpu0, stat0 := agentsCPU(pids), machineCPU()
	time.Sleep(idleWindow)
	info.IdleAgents = (agentsCPU(pids) - cpu0).Seconds() / idleWindow.Seconds()
	info.IdleBusy = machineCPU().busySince(stat0)
	master := f.Cluster.Node("master")
	var logs []string
	for _, node := range f.Cluster.Nodes() {
		logs = append(logs, node.LogPath)
	}

	for k, design := range strings.Split(*flagDesigns, ",") {
		id := fmt.Sprintf("bench-%d-%d-%s", n, k, design)
		// Each design starts on a settled fleet: every agent alive as the
		// master sees it (a design that overloads the fleet leaves agents
		// flapping for a while).
		alive, waited := waitAlive(master.RPCAddr, n+1, 2*time.Minute)
		settled := ""
		if alive != n+1 || waited > 5*time.Second {
			settled = fmt.Sprintf("before it, the master saw %d of %d agents alive after waiting %s", alive, n+1, waited.Round(time.Second))
		}
		offsets := logOffsets(logs)
		cpu0, stat0 := agentsCPU(pids), machineCPU()
		var r row
		switch design {
		case designSerfdeploy:
			r = runSerfdeploy(b, bin, master.RPCAddr, f.LogURL, id, agents)
		case designArticle:
			r = runArticle(b, master.RPCAddr, id, agents, "query")
		default:
			b.Fatalf("unknown design %q in -designs", design)
		}
		r.N, r.Design, r.Settled = n, design, settled
		r.AgentsCPU = agentsCPU(pids) - cpu0
		r.MachineBusy = machineCPU().busySince(stat0)
		countLogs(logs, offsets, &r)

		// Runs go on after a command gives up: wait for them (bounded), so
		// that the ground truth is whole and the next design finds the
		// agents idle.
		truth := waitTruth(b, si.Truth, id, n, *flagMax+30*time.Second)
		fillTiming(&r, truth)
		if design == designSerfdeploy {
			if p, err := readPhases(f.Dir, id, agents, r.fired, truth); err == nil {
				r.Phases = &p
				b.Logf("N=%d: the agents took the run request at %v after the fire", n, p.Took)
			} else {
				b.Logf("N=%d: the start's phases: %v", n, err)
			}
		}
		r.Accounted = account(r.Accounted, agents, truth, r.accountStates)
		r.accountStates = nil
		b.Logf("N=%d %s: exit %d, total %s, %d/%d runs, accounted: %s", n, design, r.Exit, r.Total.Round(time.Millisecond), r.Ran, n, r.Accounted)
		mu.Lock()
		results[n] = append(results[n], r)
		mu.Unlock()
	}
	info.AgentsRSS2 = sumRSS(pids)
}

// command runs one design's command with the given environment, bounded in
// time, and fills exit code, CPU, peak RSS and the first error line.
func command(b *testing.B, r *row, env []string, name string, args ...string) (stdout, stderr []byte, fired, exited time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), *flagBound+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "NO_COLOR=1"}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	// Its own process group, so that the bound stops a shell loop's
	// children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	fired = time.Now()
	err := cmd.Run()
	exited = time.Now()
	r.Exit = 0
	if err != nil {
		r.Exit = -1
		if ee, ok := err.(*exec.ExitError); ok {
			r.Exit = ee.ExitCode()
		} else {
			b.Errorf("running %s: %v", name, err)
		}
	}
	if ctx.Err() != nil {
		r.FirstErr = fmt.Sprintf("killed after %s", *flagBound+2*time.Minute)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru != nil {
		r.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		r.MaxRSS = ru.Maxrss
	}
	if r.FirstErr == "" {
		r.FirstErr = firstError(errb.String())
	}
	if *flagKeep != "" {
		base := filepath.Join(*flagKeep, r.id)
		if err := os.MkdirAll(*flagKeep, 0o755); err == nil {
			os.WriteFile(base+".stdout", out.Bytes(), 0o644)
			os.WriteFile(base+".stderr", errb.Bytes(), 0o644)
		}
	}
	for _, msg := range dropMessages {
		if c := strings.Count(errb.String(), msg); c > 0 {
			if r.Dropped == nil {
				r.Dropped = map[string]int{}
			}
			r.Dropped[msg] += c
		}
	}
	return out.Bytes(), errb.Bytes(), fired, exited
}

// Messages that mean an answer (or a whole query) was lost: the serf client
// library's, when its channel is full (the CLI's stderr, `serf query`'s
// stderr); the agent's, when an answer or a query is over its limit or an
// answer came after its query had ended; memberlist's and serf's, when
// gossip is dropped because an agent cannot keep up.
var dropMessages = []string{"Dropping query response", "Dropping query ack", "response exceeds limit", "query exceeds limit",
	"reply for non-running query", "handler queue full", "dropping messages!"}

// errorLine matches what reads as a problem in a command's stderr; a node
// line's "failed 0" and the CLI's "serfdeploy: deploy id X" note do not.
var (
	errorLine  = regexp.MustCompile(`(?i)error|\[ERR\]|\[WARN\]|exceeds|refused|timed out|timeout|gave up|lost|missed|failed(?: [^0-9]|$)|^serfdeploy: `)
	notAnError = regexp.MustCompile(`^serfdeploy: deploy id `)
)

func firstError(stderr string) string {
	for _, l := range strings.Split(stderr, "\n") {
		if errorLine.MatchString(l) && !notAnError.MatchString(l) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// runSerfdeploy is design (1): the real binary, as a CI job runs it. An
// empty id runs it without --id: the CLI generates one (r.id).
func runSerfdeploy(b *testing.B, bin, rpc, logURL, id string, agents []string) row {
	r := row{id: id}
	env := []string{"SERF_RPC_ADDR=" + rpc}
	if logURL != "" {
		env = append(env, "SERFDEPLOY_LOG_URL="+logURL)
	}
	args := []string{"deploy", "--module", "motd", "--ref", "v1", "--format", "json", "--timeout", flagBound.String()}
	if id != "" {
		args = append(args, "--id", id)
	}
	stdout, stderr, fired, exited := command(b, &r, env, bin, args...)
	r.fired, r.exited = fired, exited
	if id == "" {
		// Generated: the CLI's first line names it.
		if m := regexp.MustCompile(`deploy id (\S+)`).FindSubmatch(stderr); m != nil {
			r.id = string(m[1])
		}
	}
	var res struct {
		Nodes []struct {
			Node  string `json:"node"`
			State string `json:"state"`
		} `json:"nodes"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(stdout, &res); err != nil {
		r.Accounted = "no JSON result on stdout"
		return r
	}
	r.accountStates = map[string]string{}
	for _, n := range res.Nodes {
		r.accountStates[n.Node] = n.State
	}
	if r.FirstErr == "" && res.Error != "" {
		r.FirstErr = res.Error
	}
	return r
}

// articleScript is design (2), the article's: fire the run with one `serf
// query puppetrun`, then `serf query puppet-status` in a loop until every
// target reports a final phase. `serf query` waits out its whole timeout
// (serf's default: GossipInterval x 16 x ceil(log10(N+1)), 3.2 s for 11 to
// 99 members and 4.8 s for 100 to 999 with the local profile) every time.
// Bounded by a deadline and a count.
const articleScript = `#!/bin/sh
# article.sh RPC_ADDR ID TARGETS MAX_SECONDS OUTDIR [query|event]
rpc=$1 id=$2 want=$3 max=$4 out=$5 trigger=${6:-query}
end=$(($(date +%s) + max))
# serf prints its errors on stdout: show them on stderr.
if [ "$trigger" = event ]; then
	# As the article's text goes: the deploy event; the master installs the
	# code and fires the puppetrun query itself.
	serf event -rpc-addr "$rpc" -coalesce=false deploy "{\"id\":\"$id\",\"module\":\"motd\",\"ref\":\"v1\",\"tags\":{\"role\":\"agent\"}}" >"$out/trigger.txt" || { cat "$out/trigger.txt" >&2; exit 5; }
else
	serf query -rpc-addr "$rpc" -format json -tag role=agent puppetrun "{\"id\":\"$id\"}" >"$out/trigger.json" || { cat "$out/trigger.json" >&2; exit 5; }
fi
i=0 done=0
while :; do
	i=$((i + 1))
	serf query -rpc-addr "$rpc" -format json -tag role=agent puppet-status "{\"id\":\"$id\"}" >"$out/status.json" || { echo "polls=$i"; cat "$out/status.json" >&2; exit 5; }
	done=$(grep -cE '\\"phase\\":\\"(finished|failed|busy|disabled|skipped)\\"' "$out/status.json")
	[ "$done" -ge "$want" ] && break
	if [ "$(date +%s)" -ge "$end" ] || [ "$i" -ge 1000 ]; then
		echo "polls=$i done=$done"
		echo "gave up: $done of $want targets final" >&2
		exit 4
	fi
done
echo "polls=$i done=$done"
[ "$(grep -cE '\\"phase\\":\\"finished\\"' "$out/status.json")" -ge "$want" ] || exit 1
`

func runArticle(b *testing.B, rpc, id string, agents []string, trigger string) row {
	r := row{id: id}
	dir := b.TempDir()
	script := filepath.Join(dir, "article.sh")
	if err := os.WriteFile(script, []byte(articleScript), 0o755); err != nil {
		b.Fatal(err)
	}
	stdout, _, fired, exited := command(b, &r, nil, "/bin/sh", script, rpc, id, strconv.Itoa(len(agents)),
		strconv.Itoa(int(flagBound.Seconds())), dir, trigger)
	r.fired, r.exited = fired, exited
	if m := regexp.MustCompile(`polls=(\d+)`).FindSubmatch(stdout); m != nil {
		r.Polls, _ = strconv.Atoi(string(m[1]))
	}
	if trig, err := os.ReadFile(filepath.Join(dir, "trigger.json")); err == nil {
		var res struct{ Acks []string }
		json.Unmarshal(trig, &res)
		r.Note = fmt.Sprintf("the one `serf query puppetrun` was acknowledged by %d of %d targets, %d answered started",
			len(res.Acks), len(agents), strings.Count(string(trig), `\"result\":\"started\"`))
	}
	out, err := os.ReadFile(filepath.Join(dir, "status.json"))
	if err != nil {
		r.Accounted = "no puppet-status answer kept"
		return r
	}
	var res struct {
		Responses map[string]string
	}
	if err := json.Unmarshal(out, &res); err != nil {
		r.Accounted = "serf query's JSON unreadable: " + err.Error()
		return r
	}
	r.accountStates = map[string]string{}
	for node, payload := range res.Responses {
		var st struct {
			Phase string `json:"phase"`
		}
		if json.Unmarshal([]byte(payload), &st) != nil {
			st.Phase = "garbled"
		}
		r.accountStates[node] = st.Phase
	}
	return r
}

// waitTruth waits until every target has a ground-truth line for id, or
// until no new line has come for `quiet`.
func waitTruth(b *testing.B, path, id string, n int, quiet time.Duration) []deployrig.TruthLine {
	last, lastCount := time.Now(), -1
	for {
		all, err := deployrig.ReadTruth(path)
		if err != nil {
			b.Fatal(err)
		}
		var mine []deployrig.TruthLine
		for _, l := range all {
			if l.ID == id {
				mine = append(mine, l)
			}
		}
		if len(mine) != lastCount {
			last, lastCount = time.Now(), len(mine)
		}
		if len(mine) >= n || time.Since(last) > quiet {
			return mine
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func fillTiming(r *row, truth []deployrig.TruthLine) {
	r.Total = r.exited.Sub(r.fired)
	r.Ran = len(truth)
	if len(truth) == 0 {
		return
	}
	var lastStart, lastEnd time.Time
	for _, l := range truth {
		if l.Start.After(lastStart) {
			lastStart = l.Start
		}
		if l.End.After(lastEnd) {
			lastEnd = l.End
		}
	}
	r.FireToLastStart = lastStart.Sub(r.fired)
	r.LastEndToExit = r.exited.Sub(lastEnd)
}

// account compares what the command said of each target with what really
// happened: a run that exited 0 or 2 must be "finished", a target without a
// run must not be.
func account(prev string, agents []string, truth []deployrig.TruthLine, states map[string]string) string {
	if states == nil {
		return prev
	}
	ran := map[string]int{}
	for _, l := range truth {
		ran[l.Node] = l.Exit
	}
	var bad []string
	ok := 0
	for _, a := range agents {
		exit, did := ran[a]
		state, said := states[a]
		if !said {
			state = "no answer"
		}
		want := "finished"
		if !did {
			want = "no run"
		} else if exit != 0 && exit != 2 {
			want = "failed"
		}
		if state == want || (want == "no run" && state != "finished" && said) {
			ok++
			continue
		}
		bad = append(bad, fmt.Sprintf("%s %s (truth: %s)", a, state, want))
	}
	if len(bad) == 0 {
		return fmt.Sprintf("yes, %d/%d", ok, len(agents))
	}
	sort.Strings(bad)
	more := ""
	if len(bad) > 3 {
		more = fmt.Sprintf(" and %d more", len(bad)-3)
		bad = bad[:3]
	}
	return fmt.Sprintf("no, %d/%d: %s%s", ok, len(agents), strings.Join(bad, "; "), more)
}

// waitAlive waits until the agent at rpc lists want members alive, or for
// bound; it returns how many it last saw alive and how long it waited.
func waitAlive(rpc string, want int, bound time.Duration) (int, time.Duration) {
	start := time.Now()
	alive := 0
	for {
		out, err := exec.Command("serf", "members", "-rpc-addr", rpc, "-status", "alive").Output()
		if err == nil {
			alive = 0
			for _, l := range strings.Split(string(out), "\n") {
				if strings.TrimSpace(l) != "" {
					alive++
				}
			}
		}
		if alive >= want || time.Since(start) > bound {
			return alive, time.Since(start)
		}
		time.Sleep(time.Second)
	}
}

// Agents' logs: what each design added to them.

func logOffsets(paths []string) []int64 {
	out := make([]int64, len(paths))
	for i, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			out[i] = fi.Size()
		}
	}
	return out
}

var (
	sentLine     = regexp.MustCompile(`Requesting query send: ([A-Za-z0-9_-]+)`)
	deliveryLine = "Received event: query: "
)

func countLogs(paths []string, offsets []int64, r *row) {
	r.Sent = map[string]int{}
	if r.Dropped == nil {
		r.Dropped = map[string]int{}
	}
	for i, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		f.Seek(offsets[i], io.SeekStart)
		b, _ := io.ReadAll(f)
		f.Close()
		for _, line := range strings.Split(string(b), "\n") {
			if m := sentLine.FindStringSubmatch(line); m != nil {
				r.Sent[m[1]]++
			}
			if strings.Contains(line, deliveryLine) {
				r.Deliveries++
			}
			for _, msg := range dropMessages {
				if strings.Contains(line, msg) {
					r.Dropped[msg]++
				}
			}
		}
	}
}

// Processes: the serf agents' CPU and memory, the machine's CPU.

// agentPIDs finds each agent's serf process by its RPC address.
func agentPIDs(f *benchFleet) []int {
	want := map[string]bool{}
	for _, n := range f.Cluster.Nodes() {
		want[n.RPCAddr] = true
	}
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) < 2 || filepath.Base(args[0]) != "serf" || args[1] != "agent" {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-rpc-addr" && want[args[i+1]] {
				out = append(out, pid)
			}
		}
	}
	return out
}

var clockTick = 10 * time.Millisecond // USER_HZ is 100 on Linux

// agentsCPU sums utime, stime, cutime and cstime: the agents and the
// handlers they ran and reaped. Detached workers (and the puppet runs under
// them) are not counted.
func agentsCPU(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		fs := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		// fields 14-17 of stat; fs[0] is field 3
		for _, i := range []int{11, 12, 13, 14} {
			v, _ := strconv.ParseInt(fs[i], 10, 64)
			ticks += v
		}
	}
	return time.Duration(ticks) * clockTick
}

func sumRSS(pids []int) int64 {
	var kb int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmRSS:") {
				v, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
				kb += v
			}
		}
	}
	return kb
}

func memAvailable() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "MemAvailable:") {
			v, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return v
		}
	}
	return 0
}

type cpuStat struct{ busy, total int64 }

func machineCPU() cpuStat {
	b, _ := os.ReadFile("/proc/stat")
	line := strings.SplitN(string(b), "\n", 2)[0]
	var s cpuStat
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseInt(f, 10, 64)
		s.total += v
		if i != 3 && i != 4 { // idle, iowait
			s.busy += v
		}
	}
	return s
}

func (s cpuStat) busySince(old cpuStat) float64 {
	if s.total == old.total {
		return 0
	}
	return float64(s.busy-old.busy) / float64(s.total-old.total)
}

// The report.

func renderReport(ns []int) string {
	mu.Lock()
	defer mu.Unlock()
	var b strings.Builder
	b.WriteString("\n| N | design | fire → last run started | last run finished → exit | total | queries sent (puppet-status / puppetrun) | handler runs for queries | answers dropped | CLI CPU | CLI peak RSS | exit | every node accounted for | agents+handlers CPU | machine busy |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	var notes []string
	for _, n := range ns {
		if info := infos[n]; info != nil && info.Err != "" {
			fmt.Fprintf(&b, "| %d | – | %s | | | | | | | | | | | |\n", n, info.Err)
		}
		for _, r := range results[n] {
			sent := fmt.Sprintf("%d / %d", r.Sent["puppet-status"], r.Sent["puppetrun"])
			if r.Polls > 0 {
				sent += fmt.Sprintf(" (%d loop polls)", r.Polls)
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %d | %s | %s | %d MiB | %d | %s | %s | %.0f%% |\n",
				r.N, r.Design, secs(r.FireToLastStart, r.Ran), secs(r.LastEndToExit, r.Ran), secs(r.Total, 1),
				sent, r.Deliveries, dropped(r.Dropped), fmt.Sprintf("%.2f s", r.CPU.Seconds()), (r.MaxRSS+512)/1024, r.Exit,
				r.Accounted, secs(r.AgentsCPU, 1), 100*r.MachineBusy)
			if r.FirstErr != "" {
				notes = append(notes, fmt.Sprintf("- N=%d %s, first error line of stderr: `%s`", r.N, r.Design, strings.ReplaceAll(r.FirstErr, "`", "'")))
			}
			if r.Settled != "" {
				notes = append(notes, fmt.Sprintf("- N=%d %s: %s", r.N, r.Design, r.Settled))
			}
			if r.Note != "" {
				notes = append(notes, fmt.Sprintf("- N=%d %s: %s", r.N, r.Design, r.Note))
			}
			if r.Ran < r.N {
				notes = append(notes, fmt.Sprintf("- N=%d %s: only %d of %d targets ran", r.N, r.Design, r.Ran, r.N))
			}
		}
	}
	fmt.Fprintf(&b, "\n| N | agents start and join | serf agents' RSS after start / after the designs | MemAvailable before | idle fleet over %s: agents+handlers CPU, machine busy |\n|---|---|---|---|---|\n", idleWindow)
	for _, n := range ns {
		if info := infos[n]; info != nil && info.Err == "" {
			fmt.Fprintf(&b, "| %d | %s | %d / %d MiB | %d MiB | %.2f cores, %.0f%% |\n", n, secs(info.Start, 1), info.AgentsRSS/1024, info.AgentsRSS2/1024,
				info.MemAvail/1024, info.IdleAgents, 100*info.IdleBusy)
		}
	}
	var all []row
	for _, n := range ns {
		all = append(all, results[n]...)
	}
	b.WriteString("\nWhere serfdeploy's start goes (each a time after the fire, from the nodes' records):\n\n" + phasesTable(all))
	if len(notes) > 0 {
		b.WriteString("\n" + strings.Join(notes, "\n") + "\n")
	}
	return b.String()
}

func secs(d time.Duration, ran int) string {
	if ran == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func dropped(m map[string]int) string {
	var parts []string
	for _, msg := range dropMessages {
		if m[msg] > 0 {
			parts = append(parts, fmt.Sprintf("%d \"%s\"", m[msg], msg))
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ", ")
}

func TestFirstError(t *testing.T) {
	stderr := "serfdeploy: deploy id x\n2026-11-25T23:46:30Z agent-007            finished  changed 0, failed 0, total 8, 2.3s\n" +
		"2026/11/25 23:46:31 [ERR] Dropping query response, channel full\nserfdeploy: query exceeds limit of 1024 bytes\n"
	if got := firstError(stderr); got != "2026/11/25 23:46:31 [ERR] Dropping query response, channel full" {
		t.Fatalf("%q", got)
	}
	if got := firstError("serfdeploy: deploy id x\nagent-001 finished changed 0, failed 0, total 8\n"); got != "" {
		t.Fatalf("%q", got)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/serfdeploy/serfdeploy/orchestrate"
)

// Fault kinds a scenario draws from.
const (
	fFail       = "fail"        // a target's run fails: an Error line, exit 1 (or 6: resources failed)
	fHang       = "hang"        // a target's run lasts far past the CLI's short --timeout
	fHostile    = "hostile"     // a target's Puppet prints a 5 kB line of escapes and invalid UTF-8 (exit 1 or 2)
	fKill       = "kill-target" // a target crashes: its serf agent, worker and Puppet SIGKILLed
	fLeave      = "leave"       // a target's agent leaves (`serf leave`) mid-run; its run goes on
	fKillWorker = "kill-worker" // a target's run worker SIGKILLed (alone, or with Puppet's process group)
	fJoin       = "join"        // a node matching the filter joins during the deploy
	fConcurrent = "concurrent"  // a second deploy of the same module to the other agents
	fCLIRestart = "cli-restart" // the serf agent the CLI talks to stops and starts again
	fLokiDown   = "loki-down"   // the logging service stops mid-deploy
)

var allFaults = []string{fFail, fHang, fHostile, fKill, fLeave, fKillWorker, fJoin, fConcurrent, fCLIRestart, fLokiDown}

func nodeFault(kind string) bool {
	switch kind {
	case fFail, fHang, fHostile, fKill, fLeave, fKillWorker:
		return true
	}
	return false
}

// fault is one drawn fault and, after the scenario, whether it happened.
type fault struct {
	Kind   string
	Victim string
	How    string        // kill-target/leave: mid-run or early; kill-worker: worker or worker+puppet; cli-restart: leave or sigterm
	Delay  time.Duration // after the victim's run started (mid-run), else after the CLI started
	Exit   int           // fail, hostile: the stand-in's exit code

	Injected bool
	Note     string
}

func (f *fault) String() string {
	s := f.Kind
	if f.Victim != "" {
		s += " " + f.Victim
	}
	var det []string
	if f.How != "" {
		det = append(det, f.How)
	}
	if f.Exit != 0 {
		det = append(det, fmt.Sprintf("exit %d", f.Exit))
	}
	if f.Delay != 0 {
		det = append(det, fmt.Sprintf("+%.1fs", f.Delay.Seconds()))
	}
	if len(det) > 0 {
		s += " (" + strings.Join(det, ", ") + ")"
	}
	if !f.Injected && f.Note != "" {
		s += " [not injected: " + f.Note + "]"
	}
	return s
}

// scenario is everything drawn for one scenario: a pure function of the
// seed, the scenario's number, the agents and the fault pool, so that
// `-only N` replays it.
type scenario struct {
	Seed    uint64
	Num     int
	Faults  []*fault
	IDA     string
	IDB     string // "" without a concurrent deploy
	RefA    string
	RefB    string
	A, B    []string // intended targets
	FilterA string
	FilterB string
	Timeout time.Duration
	Plans   map[string]map[string]plan // id → node → plan
}

func (s *scenario) faultList() string {
	var parts []string
	for _, f := range s.Faults {
		parts = append(parts, f.String())
	}
	return strings.Join(parts, "; ")
}

func uniform(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return (lo + time.Duration(r.Int64N(int64(hi-lo)))).Round(10 * time.Millisecond)
}

// draw builds scenario num of seed.
func draw(seed uint64, num int, agents, pool []string, maxFaults int) *scenario {
	r := rand.New(rand.NewPCG(seed, uint64(num)))
	s := &scenario{Seed: seed, Num: num, Plans: map[string]map[string]plan{}, Timeout: 60 * time.Second}
	s.IDA = fmt.Sprintf("oracle-%d-%d", seed, num)
	k := 1 + r.IntN(maxFaults)
	kinds := append([]string(nil), pool...)
	r.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	if k > len(kinds) {
		k = len(kinds)
	}
	// Fault order does not matter; a stable one reads better.
	kinds = kinds[:k]
	sort.SliceStable(kinds, func(i, j int) bool { return index(allFaults, kinds[i]) < index(allFaults, kinds[j]) })
	has := map[string]bool{}
	for _, kind := range kinds {
		has[kind] = true
	}
	if has[fHang] {
		s.Timeout = 20 * time.Second
	}

	perm := append([]string(nil), agents...)
	r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	n := len(agents)
	switch {
	case has[fConcurrent] && n >= 2:
		nA := n - 1
		if n >= 3 {
			nA = 2 + r.IntN(n-2)
		}
		s.A, s.B = sorted(perm[:nA]), sorted(perm[nA:])
	case r.IntN(2) == 0 || n <= 2:
		s.A = sorted(perm)
	default:
		s.A = sorted(perm[:2+r.IntN(n-1)])
	}
	if len(s.A) == n {
		s.FilterA = "role=agent"
	} else {
		s.FilterA = "fqdn=" + strings.Join(append(append([]string(nil), s.A...), joinerName), "|")
	}
	refs := []string{"v1", "v2"}
	s.RefA = refs[r.IntN(2)]
	okPlan := func() plan {
		return plan{Dur: uniform(r, time.Second, 4*time.Second), Changed: r.IntN(2) == 1, Mode: "ok"}
	}
	s.Plans[s.IDA] = map[string]plan{}
	for _, a := range s.A {
		s.Plans[s.IDA][a] = okPlan()
	}

	victims := append([]string(nil), s.A...)
	r.Shuffle(len(victims), func(i, j int) { victims[i], victims[j] = victims[j], victims[i] })
	for _, kind := range kinds {
		f := &fault{Kind: kind}
		if nodeFault(kind) {
			if len(victims) == 0 {
				continue // more node faults than targets: this one is dropped
			}
			f.Victim, victims = victims[0], victims[1:]
		}
		p := s.Plans[s.IDA][f.Victim]
		switch kind {
		case fFail:
			f.Exit = 1
			if r.IntN(10) < 3 {
				f.Exit = 6
			}
			p.Mode, p.Exit = "fail", f.Exit
		case fHostile:
			f.Exit = 1 + r.IntN(2)
			p.Mode, p.Exit = "hostile", f.Exit
		case fHang:
			p.Mode, p.Dur = "hang", s.Timeout+12*time.Second
		case fKill, fLeave:
			p.Dur = uniform(r, 3*time.Second, 5*time.Second)
			if r.IntN(4) == 0 {
				f.How, f.Delay = "early", uniform(r, 200*time.Millisecond, 1500*time.Millisecond)
			} else {
				f.How, f.Delay = "mid-run", uniform(r, 0, 1500*time.Millisecond)
			}
		case fKillWorker:
			p.Dur = uniform(r, 3*time.Second, 5*time.Second)
			f.How = []string{"worker", "worker+puppet"}[r.IntN(2)]
			f.Delay = uniform(r, 0, 1500*time.Millisecond)
		case fJoin:
			f.Victim = joinerName
			f.Delay = uniform(r, 0, 3*time.Second)
			jp := okPlan()
			if r.IntN(5) < 2 {
				jp.Mode, jp.Exit = "fail", 1
				f.How = "its run fails"
			}
			s.Plans[s.IDA][joinerName] = jp
		case fConcurrent:
			s.IDB = s.IDA + "-b"
			s.RefB = s.RefA
			if r.IntN(5) < 3 {
				s.RefB = refs[1-index(refs, s.RefA)]
			}
			s.FilterB = "fqdn=" + strings.Join(s.B, "|")
			s.Plans[s.IDB] = map[string]plan{}
			for _, b := range s.B {
				s.Plans[s.IDB][b] = okPlan()
			}
			f.How = s.RefB
			f.Delay = uniform(r, 200*time.Millisecond, 2500*time.Millisecond)
		case fCLIRestart:
			f.How = []string{"leave", "sigterm"}[r.IntN(2)]
			f.Delay = uniform(r, time.Second, 4*time.Second)
		case fLokiDown:
			f.Delay = uniform(r, time.Second, 5*time.Second)
		}
		if nodeFault(kind) {
			s.Plans[s.IDA][f.Victim] = p
		}
		s.Faults = append(s.Faults, f)
	}
	return s
}

func index(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func sorted(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}

// cliRun is one serfdeploy command in the background.
type cliRun struct {
	Args          []string
	Code          int
	Stdout        bytes.Buffer
	Stderr        bytes.Buffer
	Start, Exited time.Time
	Result        *orchestrate.Result
	// ResultFile is the command's --result-file; once it ended, File is
	// that file parsed, or FileErr says why it could not be (missing,
	// unreadable, not a result), and FileRaw is what it held.
	ResultFile string
	File       *orchestrate.Result
	FileErr    string
	FileRaw    []byte
	done       chan struct{}
}

// startCLI runs serfdeploy with args and --result-file resultFile (a path
// of its own: whatever is there first is removed, so that a file the
// command did not write is never read as its result).
func (c *cluster) startCLI(bound time.Duration, resultFile string, args ...string) (*cliRun, error) {
	if err := os.Remove(resultFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	args = append(append([]string(nil), args...), "--result-file", resultFile)
	cr := &cliRun{Args: args, ResultFile: resultFile, done: make(chan struct{})}
	cli := c.nodes[cliName]
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "NO_COLOR=1", "SERF_RPC_ADDR=" + cli.addr()}
	if c.loki != nil {
		env = append(env, "SERFDEPLOY_LOG_URL="+c.loki.URL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &cr.Stdout, &cr.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cr.Start = time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, err
	}
	go func() {
		defer close(cr.done)
		defer cancel()
		err := cmd.Wait()
		cr.Exited = time.Now()
		var ee *exec.ExitError
		switch {
		case ctx.Err() != nil:
			cr.Code = -1
			fmt.Fprintf(&cr.Stderr, "\n[oracle: the CLI did not end within %s and was killed]\n", bound)
		case errors.As(err, &ee):
			cr.Code = ee.ExitCode()
		case err != nil:
			cr.Code = -1
			fmt.Fprintf(&cr.Stderr, "\n[oracle: %v]\n", err)
		}
		var res orchestrate.Result
		if json.Unmarshal(cr.Stdout.Bytes(), &res) == nil {
			cr.Result = &res
		}
		cr.File, cr.FileRaw, cr.FileErr = readResultFile(resultFile)
	}()
	return cr, nil
}

// readResultFile reads a --result-file: the result, or why there is none.
// It must be one JSON object with an exit_code.
func readResultFile(path string) (*orchestrate.Result, []byte, string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err.Error()
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, raw, fmt.Sprintf("%s: not a JSON object: %v", path, err)
	}
	if _, ok := fields["exit_code"]; !ok {
		return nil, raw, fmt.Sprintf("%s: no exit_code", path)
	}
	var res orchestrate.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, raw, fmt.Sprintf("%s: not a result: %v", path, err)
	}
	return &res, raw, ""
}

func (n *node) addr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rpc
}

// outcome is one scenario's record.
type outcome struct {
	S        *scenario
	A, B     *cliRun
	Watch    *cliRun // `watch ID` after an exit 5
	Verdicts []verdict
	Took     time.Duration
	Err      string // the harness's own trouble (the scenario is not judged)
}

func (o *outcome) disagrees() bool {
	for _, v := range o.Verdicts {
		if v.Kind != "" || v.Mismatch != "" || len(v.issues()) > 0 {
			return true
		}
	}
	return false
}

// run plays one scenario on the cluster and judges it.
func (c *cluster) run(s *scenario) *outcome {
	o := &outcome{S: s}
	begin := time.Now()
	defer func() { o.Took = time.Since(begin) }()
	for id, byNode := range s.Plans {
		for node, p := range byNode {
			if err := c.writePlan(id, node, p); err != nil {
				o.Err = err.Error()
				return o
			}
		}
	}
	// Every command of the scenario writes --result-file here (A.json,
	// B.json, watch.json); judge checks its exit_code against the exit.
	results, err := os.MkdirTemp(c.dir, fmt.Sprintf("results-%d-%d-", s.Seed, s.Num))
	if err != nil {
		o.Err = err.Error()
		return o
	}
	defer os.RemoveAll(results)
	bound := s.Timeout + 3*time.Minute
	deployArgs := func(id, ref, filter string) []string {
		return []string{"deploy", "--module", module, "--ref", ref, "--id", id, "--tag", filter,
			"--timeout", s.Timeout.String(), "--format", "json"}
	}
	a, err := c.startCLI(bound, filepath.Join(results, "A.json"), deployArgs(s.IDA, s.RefA, s.FilterA)...)
	if err != nil {
		o.Err = err.Error()
		return o
	}
	o.A = a
	unobservable := map[string]string{}
	infra := []string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, f := range s.Faults {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.inject(s, f, a, results, &mu, unobservable, &infra, &o.B)
		}()
	}
	<-a.done
	wg.Wait()
	if o.B != nil {
		<-o.B.done
	}
	// Runs may still be going (a hung one, or one the CLI gave up on):
	// the ground truth is complete once no stand-in runs.
	time.Sleep(time.Second)
	if left := c.waitStandInsDone(s.Timeout + time.Minute); len(left) > 0 {
		o.Err = fmt.Sprintf("stand-in runs %v still going long after the scenario", left)
	}
	runs, err := readRuns(c.starts, c.truth)
	if err != nil {
		o.Err = err.Error()
		return o
	}
	inA := judgeInput{
		Label: "A", ID: s.IDA, Commit: c.commits[s.RefA], Code: a.Code, Result: a.Result, Exited: a.Exited,
		File: a.File, FileErr: a.FileErr,
		Deadline: a.Start.Add(s.Timeout),
		Intended: s.A, MayJoin: []string{joinerName}, Runs: runs[s.IDA], Unobservable: unobservable,
		Hung: hung(s.Plans[s.IDA]), Infra: strings.Join(infra, ", "),
	}
	if inA.Runs == nil {
		inA.Runs = map[string][]*run{}
	}
	o.Verdicts = append(o.Verdicts, judge(inA))
	// An exit 5 after firing, because the CLI's agent or the logging
	// service went away, is followed as a pipeline would: `serfdeploy
	// watch ID` re-attaches once they are back, and its verdict is judged
	// against the same ground truth.
	if a.Code == 5 && a.Result != nil && a.Result.Fired && inA.Infra != "" {
		if err := c.backUp(); err != nil {
			o.Err = "before re-attaching: " + err.Error()
			return o
		}
		w, err := c.startCLI(s.Timeout+3*time.Minute, filepath.Join(results, "watch.json"), "watch", s.IDA, "--timeout", s.Timeout.String(), "--format", "json")
		if err != nil {
			o.Err = err.Error()
			return o
		}
		<-w.done
		o.Watch = w
		if runs, err = readRuns(c.starts, c.truth); err != nil {
			o.Err = err.Error()
			return o
		}
		inW := inA
		inW.Label, inW.Code, inW.Result, inW.Exited, inW.Infra = "A/watch", w.Code, w.Result, w.Exited, ""
		inW.File, inW.FileErr = w.File, w.FileErr
		inW.Deadline = w.Start.Add(s.Timeout)
		inW.Runs = runs[s.IDA]
		if inW.Runs == nil {
			inW.Runs = map[string][]*run{}
		}
		o.Verdicts = append(o.Verdicts, judge(inW))
	}
	if o.B != nil {
		inB := judgeInput{
			Label: "B", ID: s.IDB, Commit: c.commits[s.RefB], Code: o.B.Code, Result: o.B.Result, Exited: o.B.Exited,
			File: o.B.File, FileErr: o.B.FileErr,
			Deadline: o.B.Start.Add(s.Timeout),
			Intended: s.B, Runs: runs[s.IDB], Unobservable: map[string]string{}, Hung: hung(s.Plans[s.IDB]), Infra: inA.Infra,
		}
		if inB.Runs == nil {
			inB.Runs = map[string][]*run{}
		}
		o.Verdicts = append(o.Verdicts, judge(inB))
	}
	return o
}

// sleepUnless sleeps d unless done closes first (then false).
func sleepUnless(d time.Duration, done <-chan struct{}) bool {
	select {
	case <-time.After(d):
		return true
	case <-done:
		return false
	}
}

// inject plays one fault during deploy A.
func (c *cluster) inject(s *scenario, f *fault, a *cliRun, results string, mu *sync.Mutex, unobservable map[string]string, infra *[]string, b **cliRun) {
	note := func(format string, args ...any) { f.Note = fmt.Sprintf(format, args...) }
	// waited waits out the fault's delay after the CLI started; false when
	// the CLI ended first (the fault is then not injected).
	waited := func() bool {
		if !sleepUnless(f.Delay, a.done) {
			note("the CLI ended first")
			return false
		}
		return true
	}
	infraFault := func(why string) {
		mu.Lock()
		*infra = append(*infra, why)
		mu.Unlock()
	}
	switch f.Kind {
	case fFail, fHang, fHostile:
		// In the plan: the fault is in place if the victim runs at all.
		f.Injected = true
		if c.waitStart(s.IDA, f.Victim, a.done) == nil {
			// Judged by the ground truth all the same (never ran).
			f.Injected, f.Note = false, "the victim's run never started"
		}

	case fKill, fLeave:
		n := c.nodes[f.Victim]
		var r *run
		if f.How == "early" {
			if !waited() {
				return
			}
		} else {
			if r = c.waitStart(s.IDA, f.Victim, a.done); r == nil {
				note("the victim's run never started before the CLI ended")
				return
			}
			time.Sleep(f.Delay)
		}
		mu.Lock()
		unobservable[f.Victim] = f.Kind
		mu.Unlock()
		if f.Kind == fLeave {
			c.leave(n)
			f.Injected = true
			return
		}
		c.kill(n)
		f.Injected = true
		// A crashed machine: its run dies with it (a run that started
		// just before the kill too).
		c.killRun(s.IDA, f.Victim, true)
		time.Sleep(300 * time.Millisecond)
		c.killRun(s.IDA, f.Victim, true)

	case fKillWorker:
		r := c.waitStart(s.IDA, f.Victim, a.done)
		if r == nil {
			note("the victim's run never started before the CLI ended")
			return
		}
		time.Sleep(f.Delay)
		if !c.killRun(s.IDA, f.Victim, f.How == "worker+puppet") {
			note("the run had ended before the kill")
		} else {
			f.Injected = true
		}

	case fJoin:
		if !waited() {
			return
		}
		if err := c.start(c.nodes[joinerName]); err != nil {
			note("%v", err)
			return
		}
		f.Injected = true

	case fConcurrent:
		if !waited() {
			return
		}
		cr, err := c.startCLI(s.Timeout+3*time.Minute, filepath.Join(results, "B.json"), "deploy", "--module", module, "--ref", s.RefB, "--id", s.IDB,
			"--tag", s.FilterB, "--timeout", s.Timeout.String(), "--format", "json")
		if err != nil {
			note("%v", err)
			return
		}
		*b = cr
		f.Injected = true

	case fCLIRestart:
		if !waited() {
			return
		}
		infraFault("the CLI's serf agent was restarted")
		n := c.nodes[cliName]
		if f.How == "leave" {
			c.leave(n)
		} else {
			c.sigterm(n)
		}
		f.Injected = true
		if err := c.start(n); err != nil {
			f.Note = "restart: " + err.Error() // reset tries again
		}

	case fLokiDown:
		if c.loki == nil {
			note("no logging service")
			return
		}
		if !waited() {
			return
		}
		infraFault("the logging service was stopped")
		c.loki.Stop()
		c.lokiOff = true
		f.Injected = true
	}
}

// killRun SIGKILLs node's worker of id and, with puppet, the stand-in's
// process group; it reports whether something was still running to kill.
func (c *cluster) killRun(id, node string, puppet bool) bool {
	killed := false
	b, err := os.ReadFile(filepath.Join(c.stateDir(node), "runs", id, "run.json"))
	if err == nil {
		var rec struct {
			WorkerPID int `json:"worker_pid"`
		}
		if json.Unmarshal(b, &rec) == nil && rec.WorkerPID > 0 && alive(rec.WorkerPID) {
			if syscall.Kill(rec.WorkerPID, syscall.SIGKILL) == nil {
				killed = true
			}
		}
	}
	if puppet {
		killed = false // what counts is that Puppet died mid-run
		runs, err := readRuns(c.starts, c.truth)
		if err == nil {
			for _, r := range runs[id][node] {
				if !r.Ended && alive(r.PID) && syscall.Kill(-r.PID, syscall.SIGKILL) == nil {
					killed = true
				}
			}
		}
	}
	return killed
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil && !zombie(pid) }

// hung lists the nodes whose planned run hangs.
func hung(plans map[string]plan) map[string]bool {
	out := map[string]bool{}
	for node, p := range plans {
		if p.Mode == "hang" {
			out[node] = true
		}
	}
	return out
}

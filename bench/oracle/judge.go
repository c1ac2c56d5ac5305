package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/serfdeploy/serfdeploy/orchestrate"
)

// Judging one deploy against the ground truth (docs/oracle.md has the
// rules in words). Each target gets a class from what its stand-in really
// did, and the set of exit codes it allows; the deploy's expected codes
// combine those with serfdeploy's precedence (a failure beats an
// incomplete deploy, which beats success).

// Target classes.
const (
	clsOK         = "ok"         // ran once, ended before the CLI exited, exit 0 or 2, this deploy's code
	clsFailed     = "failed"     // ran once and ended before the CLI exited with another exit code
	clsStale      = "stale"      // ran once, exit 0 or 2, but applied other code than this deploy's
	clsKilled     = "killed"     // started and never ended: killed with its worker
	clsUnfinished = "unfinished" // still running when the CLI exited or gave up at its --timeout (hung)
	clsNeverRan   = "never ran"  // no run of this deploy id
	clsTwice      = "ran twice"  // more than one run of this deploy id
)

// raceWindow: a run that ended this close before the CLI exited may not
// have been seen by its last poll; "timeout" is then no disagreement.
const raceWindow = 3 * time.Second

// codeSet is a set of exit codes among 0, 1, 4, 5.
type codeSet uint8

func codes(cs ...int) codeSet {
	var s codeSet
	for _, c := range cs {
		s |= 1 << bit(c)
	}
	return s
}

func bit(c int) uint {
	switch c {
	case 0:
		return 0
	case 1:
		return 1
	case 4:
		return 2
	case 5:
		return 3
	case 3:
		return 4
	}
	return 7 // never in a set
}

func (s codeSet) has(c int) bool { return bit(c) < 7 && s&(1<<bit(c)) != 0 }

func (s codeSet) list() []int {
	var out []int
	for _, c := range []int{0, 1, 3, 4, 5} {
		if s.has(c) {
			out = append(out, c)
		}
	}
	return out
}

func (s codeSet) String() string {
	var parts []string
	for _, c := range s.list() {
		parts = append(parts, fmt.Sprint(c))
	}
	return strings.Join(parts, " or ")
}

// rank is serfdeploy's precedence: 1 beats 4 beats 0.
func rank(c int) int {
	switch c {
	case 1:
		return 2
	case 4:
		return 1
	}
	return 0
}

// combine is every code the deploy may end with when each target ends
// with one code of its own set.
func combine(sets []codeSet) codeSet {
	acc := codes(0)
	for _, s := range sets {
		var next codeSet
		for _, a := range acc.list() {
			for _, b := range s.list() {
				if rank(b) > rank(a) {
					next |= codes(b)
				} else {
					next |= codes(a)
				}
			}
		}
		acc = next
	}
	return acc
}

// judgeInput is one deploy and what really happened.
type judgeInput struct {
	Label  string // "A" (the faulted deploy) or "B" (the concurrent one)
	ID     string
	Commit string // the commit of the deploy's ref
	Code   int    // the CLI's exit code (-1: it did not end)
	Result *orchestrate.Result
	Exited time.Time
	// Deadline is the CLI's start plus its --timeout: it gives up on the
	// runs still going then, so a run is judged by what it had done at
	// the earlier of Deadline and Exited (zero: Exited).
	Deadline time.Time
	// Intended are the nodes the deploy was meant for: alive and matching
	// its filter when the CLI started. MayJoin may have joined since: they
	// are targets when they ran the id or the CLI lists them.
	Intended []string
	MayJoin  []string
	Runs     map[string][]*run // node → runs of ID
	// Unobservable: targets whose serf agent was killed or left during the
	// deploy (node → what happened); the CLI may call them lost.
	Unobservable map[string]string
	// Hung: targets whose stand-in run was planned to hang past the
	// CLI's --timeout; one with no end yet is still running, not killed.
	Hung map[string]bool
	// Infra says why exit 5 is acceptable ("" when it is not): the CLI's
	// own agent or the logging service went away during the deploy.
	Infra string
	// File is the CLI's --result-file, parsed; FileErr says why there is
	// none (missing, unreadable, not a result). Its exit_code must be the
	// process's exit code (Code): what a pipeline reads from the file and
	// what it gets from the exit status must agree.
	File    *orchestrate.Result
	FileErr string
}

type targetTruth struct {
	Node   string
	Class  string
	Detail string
	Codes  codeSet
	State  string // what the CLI said ("absent" when not in its result)
	Issue  string // the per-node disagreement, if any
}

type verdict struct {
	Label string
	ID    string
	Code  int
	Want  codeSet
	Kind  string // "", "false green", "false red", "wrong code"
	Why   string
	// Mismatch says how the --result-file disagrees with the process's
	// exit code ("" when it agrees), whatever Kind is.
	Mismatch string
	Targets  []targetTruth
}

const (
	kindFalseGreen = "false green"
	kindFalseRed   = "false red"
	kindWrongCode  = "wrong code"
	kindMismatch   = "mismatch" // counted apart from Kind: see verdict.Mismatch
)

// fileMismatch checks the --result-file against the exit code.
func fileMismatch(in judgeInput) string {
	switch {
	case in.Code < 0:
		// The CLI did not end by itself (the oracle killed it at its bound)
		// or could not be run: there is no exit code to compare, and the
		// verdict is already a wrong code.
		return ""
	case in.FileErr != "":
		return fmt.Sprintf("exit %d, no usable --result-file: %s", in.Code, in.FileErr)
	case in.File == nil:
		return fmt.Sprintf("exit %d, no --result-file read", in.Code)
	case in.File.ExitCode != in.Code:
		return fmt.Sprintf("exit %d, but the --result-file says exit_code %d", in.Code, in.File.ExitCode)
	}
	return ""
}

// classify gives a target's class from its runs of the deploy id.
func classify(runs []*run, commit string, exited, deadline time.Time, hung bool) (class, detail string, race bool) {
	cutoff, timedOut := exited, false
	if !deadline.IsZero() && !exited.Before(deadline) {
		cutoff, timedOut = deadline, true
	}
	switch {
	case len(runs) == 0:
		return clsNeverRan, "no run of this deploy id", false
	case len(runs) > 1:
		var exits []string
		for _, r := range runs {
			if r.Ended {
				exits = append(exits, fmt.Sprint(r.Exit))
			} else {
				exits = append(exits, "killed")
			}
		}
		return clsTwice, fmt.Sprintf("%d runs (%s)", len(runs), strings.Join(exits, ", ")), false
	}
	r := runs[0]
	switch {
	case !r.Ended && hung:
		return clsUnfinished, fmt.Sprintf("run started %s, hung: still running when judged", clock(r.Start)), false
	case !r.Ended:
		return clsKilled, fmt.Sprintf("run started %s, killed before it ended", clock(r.Start)), false
	case timedOut && r.End.After(cutoff.Add(raceWindow)):
		return clsUnfinished, fmt.Sprintf("run ended %.1fs after the CLI's --timeout (exit %d)", r.End.Sub(cutoff).Seconds(), r.Exit), false
	case !timedOut && !cutoff.IsZero() && r.End.After(cutoff):
		return clsUnfinished, fmt.Sprintf("run ended %.1fs after the CLI exited (exit %d)", r.End.Sub(cutoff).Seconds(), r.Exit), false
	}
	// Around the deadline the CLI may have seen the end or not.
	race = timedOut && r.End.After(cutoff.Add(-raceWindow))
	switch {
	case r.Exit != 0 && r.Exit != 2:
		return clsFailed, fmt.Sprintf("exit %d", r.Exit), race
	case !sameCommit(r.Commit, commit):
		return clsStale, fmt.Sprintf("exit %d but applied motd=%s, not this deploy's %s", r.Exit, short(r.Commit), short(commit)), race
	}
	return clsOK, fmt.Sprintf("exit %d, %.1fs", r.Exit, r.End.Sub(r.Start).Seconds()), race
}

func sameCommit(a, b string) bool { return a != "" && a == b }

func short(c string) string {
	if len(c) > 10 {
		return c[:10]
	}
	return c
}

func clock(t time.Time) string { return t.Format("15:04:05.000") }

// judge decides one deploy's verdict and its per-node disagreements.
func judge(in judgeInput) verdict {
	v := verdict{Label: in.Label, ID: in.ID, Code: in.Code, Mismatch: fileMismatch(in)}
	states := map[string]string{}
	if in.Result != nil {
		for _, n := range in.Result.Nodes {
			states[n.Node] = n.State
		}
	}
	targets := append([]string(nil), in.Intended...)
	seen := map[string]bool{}
	for _, n := range targets {
		seen[n] = true
	}
	for _, n := range in.MayJoin {
		if _, listed := states[n]; !seen[n] && (len(in.Runs[n]) > 0 || listed) {
			targets = append(targets, n)
			seen[n] = true
		}
	}
	// A node the CLI lists that was never meant for this deploy is judged
	// too: it must not be called finished without a run.
	for n := range states {
		if !seen[n] {
			targets = append(targets, n)
			seen[n] = true
		}
	}
	sort.Strings(targets)

	early5 := in.Code == 5 && in.Infra != ""
	allOK := true
	var sets []codeSet
	for _, name := range targets {
		class, detail, race := classify(in.Runs[name], in.Commit, in.Exited, in.Deadline, in.Hung[name])
		t := targetTruth{Node: name, Class: class, Detail: detail}
		switch class {
		case clsOK:
			t.Codes = codes(0)
		case clsFailed, clsStale, clsKilled:
			t.Codes = codes(1)
		case clsTwice:
			t.Codes = codes(1, 4)
		default: // never ran, unfinished
			t.Codes = codes(4)
		}
		unobs := in.Unobservable[name]
		switch {
		case class == clsKilled && unobs != "":
			// A crashed node: its run died with its agent, nobody can
			// report it but serf, which says lost.
			t.Codes = codes(4)
		case unobs != "" || race:
			t.Codes |= codes(4)
		}
		if class != clsOK {
			allOK = false
		}
		sets = append(sets, t.Codes)

		state, listed := states[name]
		if !listed {
			state = "absent"
		}
		t.State = state
		switch {
		case in.Result == nil:
			// No result to compare with: the exit code says it all.
		case state == orchestrate.StateFinished && class != clsOK:
			t.Issue = fmt.Sprintf("CLI says finished, truth: %s (%s)", class, detail)
		case state == orchestrate.StateFinished:
		case unobs != "" && unobservableState(state):
			// serf saw it fail or leave: lost, timeout (waiting for a
			// node that left to come back), or, re-attaching with
			// `watch`, not found at all; the exit code still has to
			// account for it.
		case class == clsOK && state == orchestrate.StateTimeout && race:
		case class == clsOK && early5 && !orchestrate.Final(state):
		case class == clsOK:
			t.Issue = fmt.Sprintf("truth: ok (%s), CLI says %s", detail, state)
		case state == "absent" && !early5 && in.Code != 2 && in.Code != 3:
			t.Issue = fmt.Sprintf("truth: %s (%s), absent from the CLI's result", class, detail)
		}
		v.Targets = append(v.Targets, t)
	}
	if triggerUnanswered(in.Result) {
		// A master says its trigger was sent to more nodes than answered
		// it: one of them (a node that joined as the deploy started, the
		// gossip missing it) may have the run or not, and the CLI cannot
		// account for it; 4 is its honest answer (README: a master
		// reached more nodes than answered). Seed 51 scenario 71: late-01
		// joined, was listed by the trigger, never ran, and the CLI's 4
		// was judged a wrong code.
		sets = append(sets, codes(0, 4))
	}
	v.Want = combine(sets)
	if in.Infra != "" {
		v.Want |= codes(5)
	}
	if strings.HasSuffix(in.Label, "/watch") && noneRan(v.Targets) {
		// `watch` of an id no node has a record of: exit 3 (README), with
		// "nothing ran under it, so deploying again is safe".
		v.Want |= codes(3)
	}
	switch {
	case in.Code == 0 && !allOK:
		v.Kind = kindFalseGreen
	case in.Code == 1 && allOK:
		v.Kind = kindFalseRed
	case !v.Want.has(in.Code):
		v.Kind = kindWrongCode
	}
	if v.Kind != "" {
		v.Why = fmt.Sprintf("exit %d, want %s", in.Code, v.Want)
		if in.Result != nil && in.Result.Outcome != "" {
			v.Why += fmt.Sprintf(" (CLI: %q)", in.Result.Outcome)
		}
	}
	return v
}

// triggerUnanswered reports whether a master of the result says its
// trigger was sent to more nodes than answered it.
func triggerUnanswered(res *orchestrate.Result) bool {
	if res == nil {
		return false
	}
	for _, m := range res.Masters {
		if m.Listed > m.Reached {
			return true
		}
	}
	return false
}

// unobservableState: what the CLI may say of a node serf saw fail or leave.
func unobservableState(state string) bool {
	switch state {
	case orchestrate.StateLost, orchestrate.StateTimeout, orchestrate.StateMissed, orchestrate.StateInterrupted, "absent":
		return true
	}
	return false
}

func (v verdict) issues() []targetTruth {
	var out []targetTruth
	for _, t := range v.Targets {
		if t.Issue != "" {
			out = append(out, t)
		}
	}
	return out
}

// truthLine renders the targets as "node class/state" pairs.
func (v verdict) truthLine() string {
	var parts []string
	for _, t := range v.Targets {
		parts = append(parts, fmt.Sprintf("%s: truth %s (%s), CLI %s", t.Node, t.Class, t.Detail, t.State))
	}
	return strings.Join(parts, "; ")
}

// noneRan reports whether no target ran the deploy id at all.
func noneRan(targets []targetTruth) bool {
	for _, t := range targets {
		if t.Class != clsNeverRan {
			return false
		}
	}
	return true
}

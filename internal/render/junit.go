package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/jstemmer/go-junit-report/v2/junit"

	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/protocol"
)

// JUnit writes the result as JUnit XML for Jenkins' JUnit plugin: one test
// suite per deploy, one test case per target node. A failed run (or a node
// that was busy, disabled or ran other code, and did not apply the release)
// is a failure carrying the failed resources; a node that was lost, timed
// out, was interrupted or never got the request is an error, because the
// run's outcome is unknown. A command that ended before reaching any node
// is one error case, so that Jenkins shows why instead of nothing.
//
// Every text is cleaned first: the encoder writes CDATA as is, and one ESC
// from Puppet's colours makes the file invalid, so Jenkins loses every
// node's result.
func JUnit(w io.Writer, res *orchestrate.Result) error {
	class := classname(res)
	suite := junit.Testsuite{
		Name: class,
		Time: seconds(res.Finished.Sub(res.Started).Seconds()),
	}
	suite.SetTimestamp(res.Started)
	suite.AddProperty("deploy_id", line(res.ID, 200))
	suite.AddProperty("kind", line(res.Kind, 200))
	if res.Module != "" {
		suite.AddProperty("module", line(res.Module, 200))
		suite.AddProperty("ref", line(res.Ref, 200))
	}
	if res.Environment != "" {
		suite.AddProperty("environment", line(res.Environment, 200))
	}
	if res.Build != nil && res.Build.URL != "" {
		suite.AddProperty("build_url", line(res.Build.URL, 2000))
	}
	suite.AddProperty("exit_code", fmt.Sprint(res.ExitCode))
	// Test cases are the target nodes only; the masters' code sync is
	// context, kept as properties and in the suite's output.
	for _, m := range res.Masters {
		suite.AddProperty("master."+line(m.Node, 200), line(m.Phase+" "+m.Commit+" "+m.Message, 300))
	}
	for _, n := range res.Nodes {
		suite.AddTestcase(testcase(class, n))
	}
	if len(res.Nodes) == 0 && res.Error != "" {
		suite.AddTestcase(junit.Testcase{
			Name: "serfdeploy", Classname: class, Time: seconds(0),
			Error: &junit.Result{Message: line(res.Error, 2000), Type: fmt.Sprintf("exit-%d", res.ExitCode), Data: text(res.Error)},
		})
	}
	suite.SystemOut = &junit.Output{Data: suiteOutput(res)}
	var suites junit.Testsuites
	suites.Name = "serfdeploy"
	suites.Time = suite.Time
	suites.AddSuite(suite)
	if _, err := io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"); err != nil {
		return err
	}
	return suites.WriteXML(w)
}

// classname is "serfdeploy.<environment>.<module>" ("run" in place of the
// module for a run): stable across builds, so that Jenkins links a node's
// results from one build to the next. Each part is reduced to
// [A-Za-z0-9_-], as a dot would split the package from the class.
func classname(res *orchestrate.Result) string {
	what := res.Module
	if res.Kind == "run" || what == "" {
		what = "run"
	}
	env := res.Environment
	if env == "" {
		env = "default"
	}
	return "serfdeploy." + classPart(env) + "." + classPart(what)
}

func classPart(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

// suiteOutput is the deploy's context as plain lines: Jenkins shows a
// suite's system-out by default, and hides properties.
func suiteOutput(res *orchestrate.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "deploy id: %s\nkind: %s\n", line(res.ID, 200), line(res.Kind, 200))
	if res.Module != "" {
		fmt.Fprintf(&b, "module: %s\nref: %s\n", line(res.Module, 200), line(res.Ref, 200))
	}
	if res.Environment != "" {
		fmt.Fprintf(&b, "environment: %s\n", line(res.Environment, 200))
	}
	if res.Build != nil && res.Build.URL != "" {
		fmt.Fprintf(&b, "build: %s\n", line(res.Build.URL, 2000))
	}
	fmt.Fprintf(&b, "exit code: %d\n", res.ExitCode)
	fmt.Fprintf(&b, "outcome: %s\n", outcomeText(res))
	for _, m := range res.Masters {
		fmt.Fprintf(&b, "master %s: %s\n", line(m.Node, 200), masterLine(m, maxText))
	}
	return b.String()
}

// masterLine is a master's code sync: phase, commit and message.
func masterLine(m orchestrate.MasterResult, max int) string {
	s := "code sync " + line(m.Phase, 100)
	if m.Commit != "" {
		s += " (" + line(m.Commit, 100) + ")"
	}
	if m.Message != "" {
		s += ": " + line(m.Message, max)
	}
	return s
}

func testcase(class string, n orchestrate.NodeResult) junit.Testcase {
	tc := junit.Testcase{Name: line(n.Node, 300), Classname: class, Time: seconds(n.DurationSec)}
	state := line(n.State, 100)
	msg := state
	if n.Reason != "" {
		msg += " (" + line(n.Reason, 200) + ")"
	}
	if n.Message != "" {
		msg += ": " + line(n.Message, 300)
	}
	if n.JoinedLate {
		msg += " " + joinedLate
	}
	var data strings.Builder
	fmt.Fprintf(&data, "state: %s\nexit code: %s\nchanged: %d failed: %d total: %d\n", state, protocol.ExitText(n.ExitCode), n.Changed, n.Failed, n.Total)
	if n.JoinedLate {
		data.WriteString(joinedLate + "\n")
	}
	if n.Message != "" {
		fmt.Fprintf(&data, "message: %s\n", text(n.Message))
	}
	for _, f := range n.FailedResources {
		fmt.Fprintf(&data, "%s: %s\n", line(f.Resource, 1000), text(f.Message))
	}
	switch n.State {
	case orchestrate.StateFinished:
		tc.SystemOut = &junit.Output{Data: data.String()}
	case orchestrate.StateSkipped:
		tc.Skipped = &junit.Result{Message: msg}
	case orchestrate.StateFailed, orchestrate.StateBusy, orchestrate.StateDisabled, orchestrate.StateStale:
		tc.Failure = &junit.Result{Message: msg, Type: state, Data: data.String()}
	default: // lost, timeout, missed, interrupted, waiting, pending, running, or unknown: the run's outcome is unknown
		tc.Error = &junit.Result{Message: msg, Type: state, Data: data.String()}
	}
	return tc
}

func seconds(s float64) string {
	if s < 0 {
		s = 0
	}
	return fmt.Sprintf("%.3f", s)
}

package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/jstemmer/go-junit-report/v2/junit"

	"github.com/serfdeploy/serfdeploy/orchestrate"
)

// JUnit writes the result as JUnit XML for Jenkins' JUnit plugin: one test
// suite per deploy, one test case per target node. A failed run (or a node
// that was busy or disabled and did not apply the release) is a failure
// carrying the failed resources; a node that was lost, timed out or never
// got the request is an error, because the run's outcome is unknown.
func JUnit(w io.Writer, res *orchestrate.Result) error {
	suite := junit.Testsuite{
		Name: "serfdeploy." + res.Kind + "." + res.ID,
		Time: seconds(res.Finished.Sub(res.Started).Seconds()),
	}
	suite.SetTimestamp(res.Started)
	suite.AddProperty("deploy_id", res.ID)
	if res.Module != "" {
		suite.AddProperty("module", res.Module)
		suite.AddProperty("ref", res.Ref)
	}
	if res.Environment != "" {
		suite.AddProperty("environment", res.Environment)
	}
	if res.Build != nil && res.Build.URL != "" {
		suite.AddProperty("build_url", res.Build.URL)
	}
	suite.AddProperty("exit_code", fmt.Sprint(res.ExitCode))
	// Test cases are the target nodes only; the masters' code sync is
	// context, kept as properties.
	for _, m := range res.Masters {
		suite.AddProperty("master."+m.Node, strings.TrimSpace(m.Phase+" "+m.Commit+" "+oneLine(m.Message, 200)))
	}
	for _, n := range res.Nodes {
		suite.AddTestcase(testcase(suite.Name, n))
	}
	var suites junit.Testsuites
	suites.Name = "serfdeploy"
	suites.Time = suite.Time
	suites.AddSuite(suite)
	if _, err := io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"); err != nil {
		return err
	}
	return suites.WriteXML(w)
}

func testcase(suiteName string, n orchestrate.NodeResult) junit.Testcase {
	tc := junit.Testcase{Name: n.Node, Classname: suiteName, Time: seconds(n.DurationSec)}
	msg := n.State
	if n.Reason != "" {
		msg += " (" + n.Reason + ")"
	}
	if n.Message != "" {
		msg += ": " + oneLine(n.Message, 300)
	}
	var data strings.Builder
	fmt.Fprintf(&data, "state: %s\nexit code: %s\nchanged: %d failed: %d total: %d\n", n.State, exitText(n.ExitCode), n.Changed, n.Failed, n.Total)
	if n.Message != "" {
		fmt.Fprintf(&data, "message: %s\n", n.Message)
	}
	for _, f := range n.FailedResources {
		fmt.Fprintf(&data, "%s: %s\n", f.Resource, f.Message)
	}
	switch n.State {
	case orchestrate.StateFailed, orchestrate.StateBusy, orchestrate.StateDisabled:
		tc.Failure = &junit.Result{Message: msg, Type: n.State, Data: data.String()}
	case orchestrate.StateLost, orchestrate.StateTimeout, orchestrate.StateMissed,
		orchestrate.StateWaiting, orchestrate.StatePending, orchestrate.StateRunning:
		tc.Error = &junit.Result{Message: msg, Type: n.State, Data: data.String()}
	case orchestrate.StateSkipped:
		tc.Skipped = &junit.Result{Message: msg}
	default:
		tc.SystemOut = &junit.Output{Data: data.String()}
	}
	return tc
}

func seconds(s float64) string {
	if s < 0 {
		s = 0
	}
	return fmt.Sprintf("%.3f", s)
}

// Package render turns results into what people and machines read: the
// text summary, JSON, JUnit XML for Jenkins and Markdown for a build
// description. It decides nothing; orchestrate has already.
package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/serfdeploy/serfdeploy/internal/iostreams"
	"github.com/serfdeploy/serfdeploy/orchestrate"
)

// JSON writes v as one indented JSON document.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Summary writes the per-node table of a deploy, run or report, then the
// failed resources with their messages, then the outcome line.
func Summary(w io.Writer, res *orchestrate.Result, cs iostreams.ColorScheme) error {
	title := res.Kind + " " + res.ID
	if res.Module != "" {
		title += fmt.Sprintf(": %s at %s", res.Module, res.Ref)
	}
	if res.Environment != "" {
		title += " (environment " + res.Environment + ")"
	}
	fmt.Fprintln(w, cs.Bold(title))
	for _, m := range res.Masters {
		line := fmt.Sprintf("  master %s: code sync %s", m.Node, m.Phase)
		if m.Commit != "" {
			line += " (" + m.Commit + ")"
		}
		if m.Message != "" {
			line += ": " + m.Message
		}
		fmt.Fprintln(w, line)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tRESULT\tEXIT\tCHANGED\tFAILED\tTOTAL\tDURATION\tDETAIL")
	for _, n := range res.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", n.Node, paintState(cs, n.State), exitText(n.ExitCode),
			n.Changed, n.Failed, n.Total, durationText(n.DurationSec), detail(n))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range res.Nodes {
		for _, f := range n.FailedResources {
			fmt.Fprintf(w, "  %s: %s: %s\n", n.Node, cs.Red(f.Resource), f.Message)
		}
	}
	if res.StatusSource != "" {
		fmt.Fprintf(w, "final status from %s\n", res.StatusSource)
	}
	_, err := fmt.Fprintln(w, paintExit(cs, res.ExitCode, res.Outcome))
	return err
}

func detail(n orchestrate.NodeResult) string {
	var parts []string
	if n.Reason != "" {
		parts = append(parts, n.Reason)
	}
	if n.Message != "" {
		parts = append(parts, oneLine(n.Message, 160))
	}
	if n.LogMissing {
		parts = append(parts, "no finished record in the logging service")
	}
	return strings.Join(parts, ": ")
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max-3] + "..."
	}
	return s
}

func exitText(code *int) string {
	if code == nil {
		return "-"
	}
	return fmt.Sprint(*code)
}

func durationText(sec float64) string {
	if sec <= 0 {
		return "-"
	}
	return (time.Duration(sec*10) * time.Second / 10).String()
}

func paintState(cs iostreams.ColorScheme, state string) string {
	switch state {
	case orchestrate.StateFinished:
		return cs.Green(state)
	case orchestrate.StateFailed, orchestrate.StateLost:
		return cs.Red(state)
	case orchestrate.StateBusy, orchestrate.StateDisabled, orchestrate.StateTimeout, orchestrate.StateMissed:
		return cs.Yellow(state)
	}
	return state
}

func paintExit(cs iostreams.ColorScheme, code int, text string) string {
	switch code {
	case orchestrate.ExitOK:
		return cs.Green(text)
	case orchestrate.ExitIncomplete:
		return cs.Yellow(text)
	}
	return cs.Red(text)
}

// Event is one node's state change as a progress line.
func Event(cs iostreams.ColorScheme, e orchestrate.Event) string {
	who := e.Node
	if e.Master {
		who += " (master)"
	}
	line := fmt.Sprintf("%-20s %s", who, paintState(cs, e.State))
	if e.Detail != "" {
		line += "  " + oneLine(e.Detail, 200)
	}
	return line
}

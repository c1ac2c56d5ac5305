// Package render turns results into what people and machines read: the
// text summary, JSON, JUnit XML for Jenkins and Markdown for a build
// description. It decides nothing; orchestrate has already.
package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/serfdeploy/serfdeploy/internal/iostreams"
	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/protocol"
)

// JSON writes v as one indented JSON document. A deploy result is written
// cleaned (see protocol.CleanText), like every other report of it.
func JSON(w io.Writer, v any) error {
	switch r := v.(type) {
	case *orchestrate.Result:
		if r != nil {
			v = cleanResult(r)
		}
	case orchestrate.Result:
		v = cleanResult(&r)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Summary writes the per-node table of a deploy, run or report, then the
// failed resources with their messages, then the outcome line.
func Summary(w io.Writer, res *orchestrate.Result, cs iostreams.ColorScheme) error {
	title := line(res.Kind, 100) + " " + line(res.ID, 200)
	if res.Module != "" {
		title += fmt.Sprintf(": %s at %s", line(res.Module, 200), line(res.Ref, 200))
	}
	if res.Environment != "" {
		title += " (environment " + line(res.Environment, 200) + ")"
	}
	fmt.Fprintln(w, cs.Bold(title))
	for _, m := range res.Masters {
		fmt.Fprintf(w, "  master %s: %s\n", line(m.Node, 200), masterLine(m, maxText))
	}
	rows := [][]cell{{{text: "NODE"}, {text: "RESULT"}, {text: "EXIT"}, {text: "CHANGED"}, {text: "FAILED"},
		{text: "TOTAL"}, {text: "DURATION"}, {text: "DETAIL"}}}
	for _, n := range res.Nodes {
		state := line(n.State, 100)
		rows = append(rows, []cell{{text: line(n.Node, 300)}, {text: state, paint: stateColor(cs, n.State)},
			{text: protocol.ExitText(n.ExitCode)}, {text: fmt.Sprint(n.Changed)}, {text: fmt.Sprint(n.Failed)},
			{text: fmt.Sprint(n.Total)}, {text: durationText(n.DurationSec)}, {text: detail(n)}})
	}
	if len(res.Nodes) > 0 {
		if err := writeTable(w, rows); err != nil {
			return err
		}
	}
	for _, n := range res.Nodes {
		for _, f := range n.FailedResources {
			fmt.Fprintf(w, "  %s: %s: %s\n", line(n.Node, 300), cs.Red(line(f.Resource, 1000)), text(f.Message))
		}
	}
	if res.StatusSource != "" {
		fmt.Fprintf(w, "final status from %s\n", line(res.StatusSource, 300))
	}
	_, err := fmt.Fprintln(w, paintExit(cs, res.ExitCode, outcomeText(res)))
	return err
}

// cell is a table cell: its plain text, which sets the column's width, and
// the colour to paint it with.
type cell struct {
	text  string
	paint func(string) string
}

// writeTable aligns the columns on the plain text and colours each cell
// after padding it: text/tabwriter would count colour codes as width and
// shift every coloured row.
func writeTable(w io.Writer, rows [][]cell) error {
	var widths []int
	for _, row := range rows {
		for i, c := range row {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c.text))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		var ln strings.Builder
		for i, c := range row {
			s := c.text
			if c.paint != nil {
				s = c.paint(s)
			}
			ln.WriteString(s)
			if i < len(row)-1 {
				ln.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c.text)+2))
			}
		}
		b.WriteString(strings.TrimRight(ln.String(), " ") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func detail(n orchestrate.NodeResult) string {
	var parts []string
	if n.Reason != "" {
		parts = append(parts, line(n.Reason, 200))
	}
	if n.Message != "" {
		parts = append(parts, line(n.Message, 160))
	}
	if n.LogMissing {
		parts = append(parts, "no finished record in the logging service")
	}
	s := strings.Join(parts, ": ")
	if n.JoinedLate {
		s = strings.TrimSpace(s + " " + joinedLate)
	}
	return s
}

func durationText(sec float64) string {
	if sec <= 0 {
		return "-"
	}
	return (time.Duration(sec*10) * time.Second / 10).String()
}

func paintState(cs iostreams.ColorScheme, state string) string {
	if paint := stateColor(cs, state); paint != nil {
		return paint(state)
	}
	return state
}

// stateColor is the colour of a node state, nil for none.
func stateColor(cs iostreams.ColorScheme, state string) func(string) string {
	switch state {
	case orchestrate.StateFinished:
		return cs.Green
	case orchestrate.StateFailed, orchestrate.StateLost, orchestrate.StateStale:
		return cs.Red
	case orchestrate.StateBusy, orchestrate.StateDisabled, orchestrate.StateTimeout, orchestrate.StateMissed,
		orchestrate.StateInterrupted:
		return cs.Yellow
	}
	return nil
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
	state := line(e.State, 100)
	s := fmt.Sprintf("%-20s %s", line(who, 300), paintState(cs, state))
	if e.Detail != "" {
		s += "  " + line(e.Detail, 200)
	}
	return s
}

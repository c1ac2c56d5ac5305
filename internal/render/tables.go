package render

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// The plain tables of the one-shot commands (members, status, disable,
// enable): one line a node, columns aligned, no colour.

func newTable(w io.Writer, header string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	return tw
}

// MembersTable is `serfdeploy members`.
func MembersTable(w io.Writer, members []serfrpc.Member) error {
	tw := newTable(w, "NAME\tADDRESS\tSTATUS\tTAGS")
	for _, m := range members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Name, m.Addr, m.Status, tagsText(m.Tags))
	}
	return tw.Flush()
}

func tagsText(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + tags[k]
	}
	return strings.Join(parts, ",")
}

// LockTable is `serfdeploy disable` and `enable`.
func LockTable(w io.Writer, rep *orchestrate.LockReport) error {
	tw := newTable(w, "NODE\tRESULT\tDETAIL")
	for _, n := range rep.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n.Node, n.Result, n.Message)
	}
	return tw.Flush()
}

// StatusTable is `serfdeploy status`: with an id, that deploy's phase on
// each node; without, each node's state and last run (ages from now).
func StatusTable(w io.Writer, rep *orchestrate.StatusReport, now time.Time) error {
	header := "NODE\tROLE\tSTATE\tLAST DEPLOY\tLAST RESULT\tEXIT\tAGE\tCODE\tDETAIL"
	if rep.ID != "" {
		header = "NODE\tROLE\tPHASE\tEXIT\tCHANGED\tFAILED\tTOTAL\tDETAIL"
	}
	tw := newTable(w, header)
	for _, n := range rep.Nodes {
		st := n.Status
		switch {
		case st == nil:
			fmt.Fprintf(tw, "%s\t-\tno answer\t\t\t\t\t\t%s\n", n.Node, n.Problem)
		case rep.ID != "":
			phase, detail := st.Phase, st.Message
			if st.Sync != "" {
				phase, detail = "sync "+st.Sync, st.SyncMsg
			}
			if st.Reason != "" {
				detail = st.Reason + ": " + detail
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", n.Node, st.Role, phase, protocol.ExitText(st.Exit), st.Changed, st.Failed, st.Total, detail)
		default:
			statusLine(tw, n.Node, st, now)
		}
	}
	return tw.Flush()
}

// statusLine is one node's line of the status table without an id.
func statusLine(w io.Writer, node string, st *protocol.Status, now time.Time) {
	state := "idle"
	if st.Running != "" {
		state = "running " + st.Running
	} else if st.Puppet != nil && st.Puppet.Running {
		state = "running (outside serfdeploy)"
	}
	if st.Disabled != "" {
		state += ", disabled"
	}
	last, result, exit, age, code, detail := "-", "-", "-", "-", "-", ""
	if l := st.Last; l != nil {
		last, result, exit, detail = l.ID, l.Phase, protocol.ExitText(l.Exit), l.Message
		if l.Applied != "" {
			code = l.Applied
		}
		if l.Reason != "" {
			detail = l.Reason + ": " + detail
		}
		if l.Finished > 0 {
			age = now.Sub(time.Unix(l.Finished, 0)).Round(time.Second).String()
		}
	}
	// Puppet's own last run, when newer: the daemon's, cron's, by hand.
	if ol, or, oa, oc, od, ok := outsideRun(st, now); ok {
		last, result, exit, age, code, detail = ol, or, "-", oa, oc, od
	}
	add := func(s string) { detail = strings.TrimPrefix(detail+"; "+s, "; ") }
	if st.Disabled != "" {
		add(st.Disabled)
	}
	if st.Reason == protocol.ReasonStateError {
		// The node cannot write its state directory (a full or
		// read-only disk): it can take no run.
		add(st.Reason + ": " + st.Message)
	}
	if st.Puppet != nil && st.Puppet.Error != "" {
		add("Puppet's summary: " + line(st.Puppet.Error, 300))
	}
	if st.LogSetAside > 0 {
		add(fmt.Sprintf("%d log record(s) refused by the logging service, kept in spool/rejected", st.LogSetAside))
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", node, st.Role, state, last, result, exit, age, code, detail)
}

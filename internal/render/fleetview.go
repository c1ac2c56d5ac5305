package render

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// The fleet view's text: `serfdeploy summary` (figures, then the nodes to
// look at) and `serfdeploy count` (nodes by state), and what `status`
// shows of a Puppet run made outside serfdeploy.

// SummaryText is `serfdeploy summary`; ages are from now.
func SummaryText(w io.Writer, rep *orchestrate.SummaryReport, now time.Time) error {
	fmt.Fprintf(w, "%d node(s)%s: %d answered, %d with Puppet's figures", rep.Total, filterText(rep.Filter), rep.Answered, rep.WithFigures)
	if rep.WithFigures > 0 {
		fmt.Fprintf(w, "; last runs: %d by serfdeploy, %d outside serfdeploy", rep.BySerfdeploy, rep.ByOther)
	}
	fmt.Fprintln(w)
	if rep.WithFigures > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "%-16s\tmin\tavg\tmax\t\n", "")
		age := func(f orchestrate.Figures) [3]string {
			return [3]string{ageText(f.Min), ageText(f.Avg), ageText(f.Max)}
		}
		secs := func(f orchestrate.Figures) [3]string {
			return [3]string{fmt.Sprintf("%.2fs", f.Min), fmt.Sprintf("%.2fs", f.Avg), fmt.Sprintf("%.2fs", f.Max)}
		}
		count := func(f orchestrate.Figures) [3]string {
			return [3]string{fmt.Sprint(f.Min), fmt.Sprintf("%.1f", f.Avg), fmt.Sprint(f.Max)}
		}
		for _, r := range []struct {
			name string
			v    [3]string
		}{
			{"last run age", age(rep.LastRunAge)},
			{"config retrieval", secs(rep.ConfigRetrieval)},
			{"run time", secs(rep.RunTime)},
			{"resources", count(rep.Resources.Total)},
			{"  changed", count(rep.Resources.Changed)},
			{"  failed", count(rep.Resources.Failed)},
			{"  out of sync", count(rep.Resources.OutOfSync)},
		} {
			// Names to the left (padded alike), figures to the right.
			fmt.Fprintf(tw, "%-16s\t%s\t%s\t%s\t\n", r.name, r.v[0], r.v[1], r.v[2])
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	oldest := make([]orchestrate.NodeNote, len(rep.Oldest))
	for i, n := range rep.Oldest {
		n.Detail = fmt.Sprintf("%s ago, %s", ageText(max(0, now.Sub(time.Unix(n.At, 0)).Seconds())), n.Detail)
		oldest[i] = n
	}
	for _, l := range []struct {
		title string
		notes []orchestrate.NodeNote
	}{
		{"oldest last runs", oldest},
		{"last run failed", rep.Failed},
		{"disabled", rep.Disabled},
		{"running now", rep.Running},
		{"no answer", rep.NoAnswer},
		{"no Puppet figures", rep.Unreadable},
	} {
		if err := noteList(w, l.title, l.notes); err != nil {
			return err
		}
	}
	return nil
}

// noteList is one titled list of nodes, each with its detail.
func noteList(w io.Writer, title string, notes []orchestrate.NodeNote) error {
	if len(notes) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\n%s (%d):\n", title, len(notes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, n := range notes {
		fmt.Fprintf(tw, "  %s\t%s\n", line(n.Node, 256), line(n.Detail, 300))
	}
	return tw.Flush()
}

// CountText is `serfdeploy count`: nodes by state, naming the few.
func CountText(w io.Writer, rep *orchestrate.CountReport) error {
	byState := map[string][]string{}
	for _, n := range rep.Nodes {
		byState[n.State] = append(byState[n.State], line(n.Node, 256))
	}
	fmt.Fprintf(w, "%d node(s)%s\n", rep.Total, filterText(rep.Filter))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range []struct {
		name  string
		n     int
		state string
	}{
		{"running", rep.Running, orchestrate.FleetRunning},
		{"idle", rep.Idle, orchestrate.FleetIdle},
		{"disabled", rep.Disabled, orchestrate.FleetDisabled},
		{"no answer", rep.NoAnswer, orchestrate.FleetNoAnswer},
	} {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", r.name, r.n, fewNames(byState[r.state]))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	d := rep.Daemon
	fmt.Fprintf(w, "agent daemon: %d running, %d stopped", d.Running, d.Stopped)
	if d.Unknown > 0 {
		fmt.Fprintf(w, ", %d unknown", d.Unknown)
	}
	fmt.Fprintln(w)
	return nil
}

// fewNames lists up to ten names, then how many more.
func fewNames(names []string) string {
	const few = 10
	if len(names) <= few {
		return strings.Join(names, " ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:few], " "), len(names)-few)
}

func filterText(f string) string {
	if f == "" || f == (serfrpc.Filter{}).String() {
		return ""
	}
	return " matching " + line(f, 300)
}

// ageText is seconds as a duration a person reads: 47m45s.
func ageText(s float64) string {
	return (time.Duration(s) * time.Second).Round(time.Second).String()
}

// outsideRun is what `status` shows of Puppet's own last run on a node when
// it is newer than serfdeploy's last record there: a run made outside
// serfdeploy (the daemon, cron, by hand). ok is false otherwise.
func outsideRun(st *protocol.Status, now time.Time) (last, result, age, code, detail string, ok bool) {
	p := st.Puppet
	if p == nil || p.At == 0 || p.By == protocol.BySerfdeploy || (st.Last != nil && st.Last.Finished >= p.At) {
		return "", "", "", "", "", false
	}
	result = protocol.PhaseFinished
	detail = fmt.Sprintf("Puppet's own last run, outside serfdeploy: %d of %d resources changed", p.Changed, p.Total)
	switch {
	case p.Total == 0:
		result, detail = protocol.PhaseFailed, "Puppet's own last run, outside serfdeploy: no catalog applied"
	case p.Fail:
		result = protocol.PhaseFailed
		detail = fmt.Sprintf("Puppet's own last run, outside serfdeploy: %d of %d resources failed", p.Failed, p.Total)
	}
	if st.Last != nil {
		detail += fmt.Sprintf("; serfdeploy's last: %s %s", st.Last.ID, st.Last.Phase)
	}
	age = now.Sub(time.Unix(p.At, 0)).Round(time.Second).String()
	return "(outside serfdeploy)", result, age, line(p.Version, 100), line(detail, 300), true
}

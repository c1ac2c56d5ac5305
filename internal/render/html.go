package render

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/serfdeploy/serfdeploy/orchestrate"
)

// The page's template: one file, so that the markup and its CSS read as
// one piece. html/template escapes every value put into it by context.
//
//go:embed timeline.html.tmpl
var timelineSource string

var timelineTemplate = template.Must(template.New("timeline").Parse(timelineSource))

// HTML writes the result as one self-contained page for Jenkins' HTML
// Publisher: the outcome and exit code, a timeline of every node's states
// with its rollout batch, and the failures with their messages. The page
// loads nothing (inline CSS, no script, no link out) and is the same bytes
// for the same result.
func HTML(w io.Writer, res *orchestrate.Result) error {
	return timelineTemplate.Execute(w, newHTMLPage(res))
}

// htmlState is a state and what the legend says of it. Every state has
// a colour and a pattern (timeline.html.tmpl), so that the page still
// reads printed in grey.
type htmlState struct {
	state, meaning string
}

// htmlStates in legend order: the run's progress first, then the results.
var htmlStates = []htmlState{
	{orchestrate.StateWaiting, "not requested or not accepted yet"},
	{orchestrate.StatePending, "accepted, queued: Puppet not started yet"},
	{orchestrate.StateRunning, "Puppet running"},
	{orchestrate.StateFinished, "finished without failures"},
	{orchestrate.StateFailed, "Puppet failed, or got no catalog"},
	{orchestrate.StateSkipped, "not run (not a target, disabled with --on-disabled skip, or its batch never started)"},
	{orchestrate.StateLost, "serf saw the node fail or leave"},
	{orchestrate.StateTimeout, "still running or silent at the deadline"},
	{orchestrate.StateMissed, "never received the run request"},
	{orchestrate.StateInterrupted, "serfdeploy stopped watching; the run goes on"},
	{orchestrate.StateStale, "applied other code than this deploy's"},
	{orchestrate.StateBusy, "another Puppet run held the node"},
	{orchestrate.StateDisabled, "Puppet disabled on the node"},
}

// htmlStateClass is the CSS class of a state; a state this page does not know
// (a newer serfdeploy's result) gets a plain one rather than its own text
// in a class name.
func htmlStateClass(state string) string {
	for _, s := range htmlStates {
		if s.state == state {
			return "s-" + state
		}
	}
	return "s-other"
}

type htmlPage struct {
	Title     string
	Outcome   string
	ExitCode  int
	ExitClass string
	Facts     []htmlFact
	Masters   []string
	Counts    string
	Legend    []htmlLegendItem
	Ticks     []htmlTick
	Batched   bool
	Groups    []htmlGroup
	Details   []htmlDetail
	Derived   bool // some running bar comes from Puppet's reported duration
}

type htmlFact struct{ Name, Value string }

type htmlLegendItem struct{ Class, State, Meaning string }

// htmlTick is a mark on the time axis, Left percent from the start.
type htmlTick struct {
	Left  string
	Label string
}

// htmlGroup is a rollout batch's nodes (all nodes, without batches).
type htmlGroup struct {
	Label  string
	Marker string // where the batch's first node left waiting, percent; "" for none
	Title  string
	Rows   []htmlRow
}

type htmlRow struct {
	Node     string
	State    string
	Class    string
	Batch    int
	Duration string
	Segs     []htmlSeg
}

// htmlSeg is one bar: a state from Left to Left+Width percent. The last one
// ends at the right edge and is drawn at least a few pixels wide, so that
// a result reached at the very end still shows.
type htmlSeg struct {
	Class string
	State string
	Wide  bool // wide enough to write the state on the bar
	Title string
	Left  string
	Width string
	Last  bool
}

type htmlDetail struct {
	Node      string
	State     string
	Class     string
	Reason    string
	Message   string
	Resources []htmlResource
}

type htmlResource struct{ Resource, Message string }

func newHTMLPage(res *orchestrate.Result) htmlPage {
	p := htmlPage{
		Title:     htmlTitle(res),
		Outcome:   outcomeText(res),
		ExitCode:  res.ExitCode,
		ExitClass: htmlExitClass(res.ExitCode),
		Facts:     htmlFacts(res),
	}
	for _, m := range res.Masters {
		p.Masters = append(p.Masters, line(m.Node, 200)+": "+masterLine(m, 1000))
	}
	for _, s := range htmlStates {
		p.Legend = append(p.Legend, htmlLegendItem{Class: htmlStateClass(s.state), State: s.state, Meaning: s.meaning})
	}
	p.Counts = htmlCounts(res)
	start, span := htmlSpan(res)
	p.Ticks = htmlTicks(span)

	// Nodes in the result's order, grouped by batch (a stable sort keeps
	// that order inside each batch).
	nodes := append([]orchestrate.NodeResult(nil), res.Nodes...)
	sort.SliceStable(nodes, func(i, j int) bool { return nodes[i].Batch < nodes[j].Batch })
	for _, n := range nodes {
		p.Batched = p.Batched || n.Batch > 0
	}
	for _, n := range nodes {
		if len(p.Groups) == 0 || p.Groups[len(p.Groups)-1].Rows[0].Batch != n.Batch {
			p.Groups = append(p.Groups, htmlGroup{})
		}
		g := &p.Groups[len(p.Groups)-1]
		r, derived := htmlNodeRow(n, start, span)
		p.Derived = p.Derived || derived
		g.Rows = append(g.Rows, r)
		if d := htmlNodeDetail(n); d != nil {
			p.Details = append(p.Details, *d)
		}
	}
	if p.Batched {
		for i := range p.Groups {
			htmlBatchMarker(&p.Groups[i], nodes, start, span)
		}
	}
	return p
}

func htmlTitle(res *orchestrate.Result) string {
	title := "serfdeploy " + line(res.Kind, 100) + " " + line(res.ID, 200)
	if res.Module != "" {
		title += ": " + line(res.Module, 200) + " at " + line(res.Ref, 200)
	}
	if res.Environment != "" {
		title += " (environment " + line(res.Environment, 200) + ")"
	}
	return title
}

// htmlExitClass colours the exit code as the summary does: green for 0,
// yellow for incomplete (4), red for the rest.
func htmlExitClass(code int) string {
	switch code {
	case orchestrate.ExitOK:
		return "ok"
	case orchestrate.ExitIncomplete:
		return "warn"
	}
	return "bad"
}

// facts are the deploy's header. The build is named by its tag and job,
// not linked: the page links nowhere, and Jenkins shows it inside the
// build anyway.
func htmlFacts(res *orchestrate.Result) []htmlFact {
	var out []htmlFact
	add := func(name, value string) {
		if value != "" {
			out = append(out, htmlFact{name, value})
		}
	}
	add("deploy id", line(res.ID, 200))
	add("kind", line(res.Kind, 100))
	if res.Module != "" {
		add("module", line(res.Module, 200)+" at "+line(res.Ref, 200))
	}
	add("environment", line(res.Environment, 200))
	add("filter", line(res.Filter, 1000))
	if res.Build != nil {
		add("build", strings.TrimSpace(line(res.Build.Tag, 200)+" "+htmlJobText(line(res.Build.Job, 200))))
	}
	if res.Noop {
		add("noop", "yes: Puppet ran with --noop, nothing was changed")
	}
	if !res.Started.IsZero() {
		add("started", res.Started.UTC().Format(htmlTimeLayout))
	}
	if !res.Finished.IsZero() {
		add("finished", res.Finished.UTC().Format(htmlTimeLayout)+" ("+htmlOffset(res.Finished.Sub(res.Started))+")")
	}
	add("final status from", line(res.StatusSource, 300))
	add("fired", fmt.Sprint(res.Fired))
	if res.Queries > 0 {
		add("serf queries", fmt.Sprint(res.Queries))
	}
	return out
}

func htmlJobText(job string) string {
	if job == "" {
		return ""
	}
	return "(job " + job + ")"
}

const htmlTimeLayout = "2006-01-02 15:04:05.0Z07:00"

// htmlCounts is "17 finished, 3 failed" in legend order.
func htmlCounts(res *orchestrate.Result) string {
	counts := res.Counts()
	var parts []string
	for _, s := range htmlStates {
		if c := counts[s.state]; c > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c, s.state))
			delete(counts, s.state)
		}
	}
	var other []string
	for state, c := range counts {
		other = append(other, fmt.Sprintf("%d %s", c, line(state, 100)))
	}
	sort.Strings(other)
	return strings.Join(append(parts, other...), ", ")
}

// htmlSpan is the timeline's start and length: the result's start to its
// end, widened to every change seen (a report's times are the logging
// service's), and never zero.
func htmlSpan(res *orchestrate.Result) (time.Time, time.Duration) {
	start, end := res.Started, res.Finished
	for _, n := range res.Nodes {
		for _, c := range n.Changes {
			if start.IsZero() || c.At.Before(start) {
				start = c.At
			}
			if c.At.After(end) {
				end = c.At
			}
		}
	}
	span := end.Sub(start)
	if span <= 0 {
		span = time.Second
	}
	return start, span
}

// ticks are the axis's marks: about 6 to 12, at a round step.
func htmlTicks(span time.Duration) []htmlTick {
	step := time.Second
	for _, s := range []time.Duration{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200} {
		step = s * time.Second
		if span/step <= 12 {
			break
		}
	}
	var out []htmlTick
	for at := time.Duration(0); at <= span; at += step {
		out = append(out, htmlTick{Left: htmlPercent(at, span), Label: "+" + tickText(at)})
	}
	return out
}

// tickText is a tick's duration without its zero tail: 1m, not 1m0s.
func tickText(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// htmlPercent is d's place on a timeline of span, as a CSS number.
func htmlPercent(d, span time.Duration) string {
	f := float64(d) / float64(span) * 100
	f = min(max(f, 0), 100)
	return fmt.Sprintf("%.3f", f)
}

// htmlOffset is a duration as the page writes it: 12.3s, 2m5.1s.
func htmlOffset(d time.Duration) string {
	return d.Round(100 * time.Millisecond).String()
}

// htmlNodeRow draws a node's timeline: waiting from the start until its first
// change, then each state until the next change, the last one to the end.
// A node whose timeline has no running state but whose run reported its
// length (a report's single record, or a run the polls never saw) gets
// its run drawn from that length, said so in the bar's title; derived
// tells.
func htmlNodeRow(n orchestrate.NodeResult, start time.Time, span time.Duration) (htmlRow, bool) {
	r := htmlRow{Node: line(n.Node, 300), State: line(n.State, 100), Class: htmlStateClass(n.State), Batch: n.Batch, Duration: durationText(n.DurationSec)}
	type change struct {
		at      time.Time
		state   string
		derived bool
	}
	changes := []change{{at: start, state: orchestrate.StateWaiting}}
	for _, c := range n.Changes {
		changes = append(changes, change{at: c.At, state: c.State})
	}
	if len(n.Changes) == 0 && n.State != "" {
		changes = []change{{at: start, state: n.State}}
	}
	derived := false
	if last := changes[len(changes)-1]; n.DurationSec > 0 && (last.state == orchestrate.StateFinished ||
		last.state == orchestrate.StateFailed || last.state == orchestrate.StateStale) && !htmlHasRunning(n.Changes) && len(changes) > 1 {
		from := last.at.Add(-time.Duration(n.DurationSec * float64(time.Second)))
		if prev := changes[len(changes)-2].at; from.Before(prev) {
			from = prev
		}
		if from.Before(last.at) {
			changes = append(changes[:len(changes)-1], change{at: from, state: orchestrate.StateRunning, derived: true}, last)
			derived = true
		}
	}
	for i, c := range changes {
		from := c.at.Sub(start)
		to := span
		if i+1 < len(changes) {
			to = changes[i+1].at.Sub(start)
		}
		from, to = min(max(from, 0), span), min(max(to, from), span)
		if to == from && i+1 < len(changes) {
			continue // a state seen and left in the same poll
		}
		s := htmlSeg{Class: htmlStateClass(c.state), State: line(c.state, 100), Left: htmlPercent(from, span), Width: htmlPercent(to-from, span), Last: i == len(changes)-1}
		s.Title = fmt.Sprintf("%s: %s from +%s to +%s (%s)", r.Node, s.State, htmlOffset(from), htmlOffset(to), htmlOffset(to-from))
		if c.derived {
			s.Title += ", from the run's reported duration"
		}
		s.Wide = float64(to-from)/float64(span) >= 0.07
		r.Segs = append(r.Segs, s)
	}
	return r, derived
}

func htmlHasRunning(changes []orchestrate.Change) bool {
	for _, c := range changes {
		if c.State == orchestrate.StateRunning {
			return true
		}
	}
	return false
}

// htmlBatchMarker marks on the batch's header row when its first node left
// waiting: when the batch started.
func htmlBatchMarker(g *htmlGroup, nodes []orchestrate.NodeResult, start time.Time, span time.Duration) {
	batch := g.Rows[0].Batch
	if batch == 0 {
		g.Label = "no batch"
		return
	}
	g.Label = fmt.Sprintf("batch %d", batch)
	var first time.Time
	for _, n := range nodes {
		if n.Batch != batch {
			continue
		}
		for _, c := range n.Changes {
			if c.State != orchestrate.StateWaiting && c.State != orchestrate.StateSkipped && (first.IsZero() || c.At.Before(first)) {
				first = c.At
			}
		}
	}
	if first.IsZero() {
		g.Title = g.Label + ": never started"
		return
	}
	g.Marker = htmlPercent(first.Sub(start), span)
	g.Title = fmt.Sprintf("%s started at +%s", g.Label, htmlOffset(first.Sub(start)))
}

// htmlNodeDetail is what the page says of a node below the timeline: its
// message and failed resources, for a node with either.
func htmlNodeDetail(n orchestrate.NodeResult) *htmlDetail {
	if n.Message == "" && len(n.FailedResources) == 0 && !n.LogMissing && !n.JoinedLate {
		return nil
	}
	d := &htmlDetail{Node: line(n.Node, 300), State: line(n.State, 100), Class: htmlStateClass(n.State), Reason: line(n.Reason, 200), Message: text(n.Message)}
	if n.LogMissing {
		d.Message = strings.TrimSpace(d.Message + " (no finished record in the logging service)")
	}
	if n.JoinedLate {
		d.Message = strings.TrimSpace(d.Message + " " + joinedLate)
	}
	for _, f := range n.FailedResources {
		d.Resources = append(d.Resources, htmlResource{Resource: line(f.Resource, 1000), Message: text(f.Message)})
	}
	return d
}

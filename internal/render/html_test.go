package render

import (
	"bytes"
	"fmt"
	"html"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/protocol"
)

// htmlRollout is a deploy of three batches in which every state shows up:
// each node's timeline goes waiting, pending, running, then its result.
func htmlRollout() *orchestrate.Result {
	res := sample()
	start := res.Started
	res.Nodes = nil
	finals := []string{"finished", "failed", "lost", "timeout", "missed", "interrupted", "stale", "busy", "disabled", "skipped", "finished", "finished"}
	for i, final := range finals {
		batch := i/4 + 1
		at := start.Add(time.Duration(batch-1) * 25 * time.Second)
		n := orchestrate.NodeResult{Node: fmt.Sprintf("web-%02d", i+1), State: final, Batch: batch}
		n.Changes = []orchestrate.Change{
			{At: at.Add(1 * time.Second), State: "pending"},
			{At: at.Add(2 * time.Second), State: "running"},
			{At: at.Add(time.Duration(10+i) * time.Second), State: final},
		}
		if final == "failed" {
			n.Reason, n.Message = "resources_failed", "1 of 9 resources failed"
			n.FailedResources = []protocol.FailedResource{{Resource: "Exec[boom]", Message: "'/bin/false' returned 1 instead of one of [0]"}}
		}
		res.Nodes = append(res.Nodes, n)
	}
	res.Finished = start.Add(85 * time.Second)
	res.Outcome = "a puppet run failed (exit 1)"
	return res
}

func renderHTML(t *testing.T, res *orchestrate.Result) string {
	t.Helper()
	var buf bytes.Buffer
	if err := HTML(&buf, res); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !utf8.ValidString(out) {
		t.Fatal("invalid UTF-8 in the page")
	}
	if strings.Contains(out, "ZgotmplZ") {
		t.Fatalf("html/template refused a value (ZgotmplZ):\n%s", out)
	}
	return out
}

// htmlSelfContained fails on anything that would make the page load or run
// something: a script, an external style sheet, font or image, a link
// out, a CSS url().
func htmlSelfContained(t *testing.T, name, page string) {
	t.Helper()
	// Text is escaped, so every "<" left opens a real tag.
	lower := strings.ToLower(page)
	for _, bad := range []string{"<script", "<link", "<img", "<iframe", "<object", "<embed", "<base", "<meta http-equiv", "@import", "url(", "@font-face"} {
		if strings.Contains(lower, bad) {
			t.Errorf("%s: the page holds %q", name, bad)
		}
	}
	for _, tag := range regexp.MustCompile(`<[^>]*>`).FindAllString(lower, -1) {
		if regexp.MustCompile(`\s(src|href|action|srcset)=`).MatchString(tag) {
			t.Errorf("%s: the page links out: %s", name, tag)
		}
	}
}

func TestHTMLTimeline(t *testing.T) {
	res := htmlRollout()
	page := renderHTML(t, res)
	htmlSelfContained(t, "rollout", page)
	// The sample's build has a URL: the page names the build without it.
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("the page holds a URL")
	}
	for _, want := range []string{
		"<title>serfdeploy deploy jenkins-release-7: motd at v2 (environment production)</title>",
		`<span class="exit bad">exit 1</span> a puppet run failed (exit 1)`,
		"<dt>build</dt><dd>jenkins-release-7</dd>",
		"master master-01: code sync triggered (abc123)",
		"Timeline: 3 finished, 1 failed, 1 skipped, 1 lost, 1 timeout, 1 missed, 1 interrupted, 1 stale, 1 busy, 1 disabled",
		"Exec[boom]", "&#39;/bin/false&#39; returned 1 instead of one of [0]", "1 of 9 resources failed",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// Every node has its row, with its result, and bars for each state it
	// went through, each with the state written out.
	for _, n := range res.Nodes {
		re := regexp.MustCompile(`<tr><th title="` + n.Node + `">` + n.Node + `</th><td><span class="state s-` + n.State + `"></span>` + n.State + `</td>.*\n((?:<span class="seg .*\n)+)`)
		m := re.FindStringSubmatch(page)
		if m == nil {
			t.Errorf("no row for %s (%s)", n.Node, n.State)
			continue
		}
		var got []string
		for _, s := range regexp.MustCompile(`<span class="seg s-(\w+)`).FindAllStringSubmatch(m[1], -1) {
			got = append(got, s[1])
		}
		if want := "waiting pending running " + n.State; strings.Join(got, " ") != want {
			t.Errorf("%s's bars: %v, want %s", n.Node, got, want)
		}
		if !strings.Contains(m[1], `<span class="lbl">`+n.State+`</span>`) {
			t.Errorf("%s's last bar does not say %s", n.Node, n.State)
		}
	}
	// The legend: every state, with its swatch.
	for _, s := range htmlStates {
		if !strings.Contains(page, `<span class="swatch s-`+s.state+`"></span>`+s.state+`</li>`) {
			t.Errorf("the legend lacks %s", s.state)
		}
		if !strings.Contains(page, ".s-"+s.state+" {") {
			t.Errorf("no style for %s", s.state)
		}
	}
	// Batches: a header row each, marked where the batch started.
	for b, at := range []string{"1.176", "30.588", "60.000"} {
		want := fmt.Sprintf(`<th colspan="3">batch %d</th><td><div class="track"><span class="marker" style="left:%s%%">batch %d starts</span>`, b+1, at, b+1)
		if !strings.Contains(page, want) {
			t.Errorf("no marker for batch %d: want %s", b+1, want)
		}
	}
	// The first node: waiting 1 s of 85, pending 1 s, running 8 s, then
	// finished to the end.
	if !strings.Contains(page, `style="left:0.000%;width:1.176%" title="web-01: waiting from &#43;0s to &#43;1s (1s)"`) ||
		!strings.Contains(page, `style="left:2.353%;width:9.412%" title="web-01: running from &#43;2s to &#43;10s (8s)"`) ||
		!strings.Contains(page, `style="right:0;width:88.235%" title="web-01: finished from &#43;10s to &#43;1m25s (1m15s)"`) {
		t.Errorf("web-01's bars are not where they belong:\n%s", page)
	}
	for _, tick := range []string{`left:0.000%">&#43;0s`, `left:11.765%">&#43;10s`, `left:94.118%">&#43;1m20s`, `left:70.588%">&#43;1m<`} {
		if !strings.Contains(page, tick) {
			t.Errorf("axis lacks %s", tick)
		}
	}
}

func TestHTMLIsDeterministic(t *testing.T) {
	a := renderHTML(t, htmlRollout())
	for i := 0; i < 5; i++ {
		if b := renderHTML(t, htmlRollout()); b != a {
			t.Fatal("two renderings of one result differ")
		}
	}
	res := htmlRollout()
	res.Nodes = append(res.Nodes, orchestrate.NodeResult{Node: "odd", State: "future-state", Changes: []orchestrate.Change{{At: res.Started.Add(time.Second), State: "future-state"}}})
	for i := 0; i < 5; i++ {
		res.Nodes = append(res.Nodes, orchestrate.NodeResult{Node: fmt.Sprintf("odd-%d", i), State: fmt.Sprintf("future-%d", i)})
	}
	a = renderHTML(t, res)
	if b := renderHTML(t, res); b != a {
		t.Fatal("two renderings of one result with unknown states differ")
	}
	if !strings.Contains(a, "1 future-0, 1 future-1") || !strings.Contains(a, `<span class="state s-other"></span>future-state`) {
		t.Fatal("a state the page does not know is not shown plainly")
	}
}

// TestHTMLHostileText: node names, messages and resources that are markup,
// terminal escapes or broken UTF-8 come out as text, never as markup.
func TestHTMLHostileText(t *testing.T) {
	res := hostileResult()
	const evil = `<script>alert(1)</script><img src=x onerror=alert(2)>"'&`
	res.Nodes[0].Node = `agent-01"><script>alert(0)</script>`
	res.Nodes[1].Message = evil + hostileMessage()
	res.Nodes[1].FailedResources[0].Resource = "Exec[</pre><b>x</b>]"
	res.Nodes[2].Message = `</style><style>body{display:none}</style>` + controls + badUTF8
	res.Masters[0].Node = "<i>master</i>"
	res.Ref = `v2</title><script>`
	for i := range res.Nodes {
		res.Nodes[i].Changes = []orchestrate.Change{{At: res.Started.Add(time.Second), State: "running"}, {At: res.Started.Add(3 * time.Second), State: res.Nodes[i].State}}
	}
	res.Nodes[3].Changes[1].State = `timeout" style="x`
	page := renderHTML(t, res)
	htmlSelfContained(t, "hostile", page)
	for _, bad := range []string{"<script", "<img", "<b>x</b>", "<i>master", "</style><style>", "\x1b", "\x00"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %q", bad)
		}
	}
	for _, want := range []string{
		"&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;&#34;&#39;&amp;",
		`agent-01&#34;&gt;&lt;script&gt;alert(0)&lt;/script&gt;`,
		"Exec[&lt;/pre&gt;&lt;b&gt;x&lt;/b&gt;]",
		"Error: Could not apply", "[cut: 8192 of",
		"bad \ufffd\ufffd \ufffd utf8",
		`<span class="seg s-other last`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// The text a reader sees is the cleaned text.
	if !strings.Contains(html.UnescapeString(page), cdataEnd) {
		t.Error("a message's text did not survive escaping")
	}
	// Four 100 kB-ish messages, each capped.
	if len(page) > 80<<10 {
		t.Errorf("the page is %d bytes: messages are not capped", len(page))
	}
}

// TestHTMLEarlyExit: a command that ended before reaching any node still
// writes a page with its error and exit code.
func TestHTMLEarlyExit(t *testing.T) {
	page := renderHTML(t, earlyExit())
	htmlSelfContained(t, "early exit", page)
	for _, want := range []string{`<span class="exit bad">exit 5</span> serf agent at 127.0.0.1:7373 is unreachable: connection refused (exit 5)`, "No node was reached."} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, `class="tl"`) || strings.Contains(page, `class="legend"`) {
		t.Error("a timeline without nodes")
	}
}

// TestHTMLReport: a report has one change per node (the logging service's
// time of its last record); a run is drawn from its reported duration,
// and a node with no batch has no batch row.
func TestHTMLReport(t *testing.T) {
	start := time.Date(2026, 11, 24, 20, 0, 0, 0, time.UTC)
	res := &orchestrate.Result{ID: "r-1", Kind: "report", Started: start, Finished: start.Add(20 * time.Second), ExitCode: 0, Outcome: "2 finished (exit 0)",
		StatusSource: "the logging service", Nodes: []orchestrate.NodeResult{
			{Node: "a", State: "finished", Source: "log", Outcome: protocol.Outcome{DurationSec: 5}, Changes: []orchestrate.Change{{At: start.Add(10 * time.Second), State: "finished"}}},
			{Node: "b", State: "finished", Source: "log", Outcome: protocol.Outcome{DurationSec: 50}, Changes: []orchestrate.Change{{At: start.Add(20 * time.Second), State: "finished"}}},
		}}
	page := renderHTML(t, res)
	for _, want := range []string{
		`<span class="exit ok">exit 0</span>`,
		`style="left:0.000%;width:25.000%" title="a: waiting from &#43;0s to &#43;5s (5s)"`,
		`style="left:25.000%;width:25.000%" title="a: running from &#43;5s to &#43;10s (5s), from the run&#39;s reported duration"`,
		`style="right:0;width:50.000%" title="a: finished from &#43;10s to &#43;20s (10s)"`,
		// b ran longer than the report's span: its run starts at the start.
		`style="left:0.000%;width:100.000%" title="b: running from &#43;0s to &#43;20s (20s), from the run&#39;s reported duration"`,
		`style="right:0;width:0.000%" title="b: finished from &#43;20s to &#43;20s (0s)"`,
		`class="note"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(page, `class="batch"`) {
		t.Error("batch rows without batches")
	}
}

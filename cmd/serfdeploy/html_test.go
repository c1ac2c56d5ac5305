package main

// The HTML report in a real browser: a rolling deploy to 20 agents, three
// of them failing with Puppet's messages, writes --html-report; Debian's
// Chromium renders it headless, its DOM must hold every node, batch,
// failure and the legend, and its screenshot must show failed and finished
// bars in the right rows.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
	"github.com/serfdeploy/serfdeploy/testkit/loki"
)

// htmlFailures are the failing agents, one in each of the first three
// batches of five, with the resource and message Puppet logs for each.
var htmlFailures = map[string][2]string{
	"agent-04": {"/Stage[main]/Motd/Exec[break-on-agent-04]/returns", "'/bin/false' returned 1 instead of one of [0]"},
	"agent-09": {"/Stage[main]/Motd/File[/etc/motd]/ensure", "change from 'absent' to 'file' failed: Could not set 'file' on ensure: Permission denied @ rb_sysopen - /etc/motd"},
	"agent-13": {"/Stage[main]/Motd/Service[app]", "Could not evaluate: Execution of '/usr/bin/curl -sf localhost:8080/health' returned 22: <html><body>503 Service Unavailable</body></html>"},
}

// chromiumBinary is Debian's Chromium, or a skip saying how to get it.
func chromiumBinary(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Skip("chromium is not installed (apt-get install chromium): the HTML report is not checked in a browser")
	return ""
}

// chromium runs the browser headless on page with extra flags (--dump-dom,
// --screenshot=FILE, --window-size=W,H; 1400,1000 without it) and returns
// its stdout. The flags are those that work as root in a container.
func chromium(t *testing.T, browser, page string, extra ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--no-first-run", "--hide-scrollbars", "--user-data-dir=" + t.TempDir()}
	if !slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, "--window-size=") }) {
		args = append(args, "--window-size=1400,1000")
	}
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, browser, append(args, "file://"+page)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", extra, err, errb.String())
	}
	t.Logf("chromium %v: %s", extra, time.Since(start).Round(time.Millisecond))
	return out.Bytes()
}

// htmlStandIn writes a stand-in for puppet whose run on each agent takes
// 1 to 2.6 s and changes one resource, and on a failing agent also fails
// one resource, logging Puppet's error for it to the JSON log the handler
// reads (--logdest), as Puppet does: exit 6, changes and failures.
func htmlStandIn(t *testing.T, dir string, agents []string) *deployrig.StandIn {
	t.Helper()
	errs := filepath.Join(dir, "errors")
	if err := os.MkdirAll(errs, 0o755); err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	for i, a := range agents {
		fmt.Fprintf(&table, "%s) t=%.1f;;\n", a, 1+float64(i%5)*0.4)
	}
	for node, f := range htmlFailures {
		entry, err := json.Marshal(map[string]string{"level": "err", "source": f[0], "message": f[1]})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(errs, node+".jsonl"), append(entry, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	truth := filepath.Join(dir, "truth.txt")
	script, err := deployrig.StandInScript(`case $n in
`+table.String()+`*) t=1;;
esac
s=$(date +%s%N)
sleep "$t"
c=1 fl=0 r=2 cv=${s%?????????}
if [ -f '`+errs+`'/"$n".jsonl ] && [ "$id" != - ]; then
	cat '`+errs+`'/"$n".jsonl >>"$l/puppet.jsonl"
	fl=1 r=6
fi
`, truth)
	if err != nil {
		t.Fatal(err)
	}
	si := &deployrig.StandIn{Path: filepath.Join(dir, "puppet-standin.sh"), Truth: truth}
	if err := os.WriteFile(si.Path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return si
}

func TestHTMLReportInChromium(t *testing.T) {
	browser := chromiumBinary(t)
	began := time.Now()
	// Loki starts while the agents do (each takes 15 to 30 s on a busy
	// machine); the agents learn its address once it is ready.
	type launched struct {
		l   *loki.Loki
		err error
	}
	lokiBin, lokiDir := loki.Binary(t), t.TempDir()
	lokiUp := make(chan launched, 1)
	go func() {
		l, err := loki.Launch(lokiBin, lokiDir)
		lokiUp <- launched{l, err}
	}()
	var agents []string
	nodes := []deployrig.Node{{Name: "master-01", Master: true}}
	for i := 1; i <= 20; i++ {
		a := fmt.Sprintf("agent-%02d", i)
		agents = append(agents, a)
		nodes = append(nodes, deployrig.Node{Name: a, Tags: map[string]string{"segment": "qa"}})
	}
	f := deployrig.Start(t, deployrig.Options{Bin: bin, Nodes: nodes})
	up := <-lokiUp
	if up.err != nil {
		t.Fatal(up.err)
	}
	lk := up.l
	t.Cleanup(lk.Stop)
	si := htmlStandIn(t, filepath.Join(f.Dir, "standin"), agents)
	for _, n := range nodes {
		useStandIn(t, f, si, n.Name)
		// What deployrig writes for Options.LogURL: the handler reads
		// its config at each event.
		conf, err := os.OpenFile(filepath.Join(f.Dir, "config", n.Name+".yaml"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = fmt.Fprintf(conf, "logging:\n  url: %s\n", lk.URL)
		if cerr := conf.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("Loki and 21 agents ready in %s", time.Since(began).Round(time.Millisecond))

	dir := t.TempDir()
	page := filepath.Join(dir, "deploy.html")
	logEnv := []string{"SERFDEPLOY_LOG_URL=" + lk.URL}
	r := f.CLI(append(logEnv, "BUILD_TAG=jenkins-release-42", "JOB_NAME=release"), deployArgs("--ref", "v1", "--tag", "segment=qa",
		"--batch", "5", "--max-failures", "5", "--id", "timeline-1", "--html-report", page, "--format", "json")...)
	if r.Code != 1 {
		t.Fatalf("want exit 1: %s", r)
	}
	res := decodeResult(t, r)
	got := states(res)
	for _, a := range agents {
		want := "finished"
		if _, fails := htmlFailures[a]; fails {
			want = "failed"
		}
		if got[a] != want {
			t.Fatalf("%s is %s, want %s: %v", a, got[a], want, got)
		}
	}
	for _, n := range res.Nodes {
		if _, fails := htmlFailures[n.Node]; fails && len(n.FailedResources) != 1 {
			t.Fatalf("%s: want its failed resource from the logging service: %+v", n.Node, n)
		}
	}

	dom := string(chromium(t, browser, page, "--dump-dom"))
	wantDOM(t, "deploy", dom, res)
	for _, want := range []string{"exit 1", "jenkins-release-42 (job release)", "batch 1", "batch 2", "batch 3", "batch 4",
		"batch 4 starts", "Exec[break-on-agent-04]", "File[/etc/motd]", "Service[app]"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %q", want)
		}
	}

	shot := filepath.Join(dir, "deploy.png")
	chromium(t, browser, page, "--screenshot="+shot)
	wantBars(t, shot, res)
	if out := os.Getenv("SERFDEPLOY_TIMELINE_PNG"); out != "" {
		// The documentation's picture (docs/img/deploy-timeline.png): the
		// whole page, failures included.
		whole := filepath.Join(dir, "whole.png")
		chromium(t, browser, page, "--screenshot="+whole, "--window-size=1400,1400")
		if err := cropPNG(whole, out); err != nil {
			t.Fatal(err)
		}
	}

	// The same deploy from the logging service alone: one time per node.
	page = filepath.Join(dir, "report.html")
	rep := deployrig.Run(t, bin, append(logEnv, "SERF_RPC_ADDR="+deadAddr(t)), "report", "timeline-1", "--html-report", page, "--format", "json")
	if rep.Code != 1 {
		t.Fatalf("report: %s", rep)
	}
	dom = string(chromium(t, browser, page, "--dump-dom"))
	wantDOM(t, "report", dom, decodeResult(t, rep))
	if !strings.Contains(dom, "from the run's reported duration") {
		t.Error("the report's page does not say its runs are drawn from their duration")
	}
	t.Logf("whole test: %s", time.Since(began).Round(time.Millisecond))
}

// TestHTMLReportOnEarlyExit: the page is written on every exit, also when
// nothing was sent (serf unreachable: exit 5; no record of the id: exit 3),
// saying why; a path that cannot be written is refused before anything is
// sent (exit 2).
func TestHTMLReportOnEarlyExit(t *testing.T) {
	dir := t.TempDir()
	page := filepath.Join(dir, "deploy.html")
	r := deployrig.Run(t, bin, []string{"SERF_RPC_ADDR=" + deadAddr(t)}, deployArgs("--ref", "v1", "--html-report", page)...)
	if r.Code != orchestrate.ExitInfra {
		t.Fatalf("want exit 5: %s", r)
	}
	b, err := os.ReadFile(page)
	if err != nil || !strings.Contains(string(b), `<span class="exit bad">exit 5</span>`) || !strings.Contains(string(b), "No node was reached.") ||
		!strings.Contains(string(b), "serf agent not reachable") {
		t.Fatalf("page after exit 5 (%v):\n%s", err, b)
	}

	empty := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"streams","result":[]}}`)
	}))
	defer empty.Close()
	page = filepath.Join(dir, "report.html")
	r = deployrig.Run(t, bin, []string{"SERFDEPLOY_LOG_URL=" + empty.URL}, "report", "no-such-deploy", "--html-report", page)
	if r.Code != orchestrate.ExitNoTargets {
		t.Fatalf("want exit 3: %s", r)
	}
	if b, err := os.ReadFile(page); err != nil || !strings.Contains(string(b), "exit 3</span>") || !strings.Contains(string(b), "no-such-deploy") {
		t.Fatalf("page after exit 3 (%v):\n%s", err, b)
	}

	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r = deployrig.Run(t, bin, []string{"SERF_RPC_ADDR=" + deadAddr(t)}, deployArgs("--ref", "v1", "--html-report", filepath.Join(blocker, "x.html"))...)
	oneLine(t, r, "--html-report")
	if r.Code != orchestrate.ExitUsage {
		t.Fatalf("unwritable --html-report: want exit 2: %s", r)
	}
}

// wantDOM checks the page as the browser read it: a row per node with its
// result, the legend, each failed resource with Puppet's message as text
// (the markup in one is text, not elements), and no script.
func wantDOM(t *testing.T, what, dom string, res orchestrate.Result) {
	t.Helper()
	if len(res.Nodes) != 20 {
		t.Fatalf("%s: %d nodes", what, len(res.Nodes))
	}
	for _, n := range res.Nodes {
		row := fmt.Sprintf(`<tr><th title="%s">%s</th><td><span class="state s-%s"></span>%s</td>`, n.Node, n.Node, n.State, n.State)
		if !strings.Contains(dom, row) {
			t.Errorf("%s: no row for %s (%s)", what, n.Node, n.State)
		}
	}
	for _, s := range []string{"waiting", "pending", "running", "finished", "failed", "skipped", "lost", "timeout", "missed", "interrupted", "stale", "busy", "disabled"} {
		if !strings.Contains(dom, `<span class="swatch s-`+s+`"></span>`+s+`</li>`) {
			t.Errorf("%s: the legend lacks %s", what, s)
		}
	}
	for node, f := range htmlFailures {
		msg := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(f[1])
		if !strings.Contains(dom, "<pre>"+msg+"</pre>") {
			t.Errorf("%s: %s's message is not on the page: %s", what, node, msg)
		}
	}
	if strings.Contains(dom, "<script") || strings.Contains(dom, "<body>503") {
		t.Errorf("%s: text became markup", what)
	}
}

// Colours of the finished and failed bars (timeline.html.tmpl).
var (
	finishedRGB = [3]int{0x33, 0xa0, 0x2c}
	failedRGB   = [3]int{0xe3, 0x1a, 0x1c}
)

// band is a horizontal stripe of the screenshot with a colour in each of
// its pixel rows: a bar, or a legend swatch.
type band struct {
	state       string
	top, bottom int // pixel rows, bottom inclusive
	left, right int // the colour's extent
}

// near reports whether the pixel at x, y is rgb, give or take 6 a channel.
func near(img image.Image, x, y int, rgb [3]int) bool {
	r, g, b, _ := img.At(x, y).RGBA()
	d := func(v uint32, w int) int { return max(int(v>>8)-w, w-int(v>>8)) }
	return d(r, rgb[0]) <= 6 && d(g, rgb[1]) <= 6 && d(b, rgb[2]) <= 6
}

// colourBands finds the stripes of rgb inside area: runs of rows with at
// least minimum pixels of it there.
func colourBands(img image.Image, area image.Rectangle, state string, rgb [3]int, minimum int) []band {
	var out []band
	var cur *band
	for y := area.Min.Y; y < area.Max.Y; y++ {
		n, left, right := 0, area.Max.X, -1
		for x := area.Min.X; x < area.Max.X; x++ {
			if near(img, x, y, rgb) {
				n++
				left, right = min(left, x), max(right, x)
			}
		}
		if n < minimum {
			cur = nil
			continue
		}
		if cur == nil {
			out = append(out, band{state: state, top: y, left: left, right: right})
			cur = &out[len(out)-1]
		}
		cur.bottom, cur.left, cur.right = y, min(cur.left, left), max(cur.right, right)
	}
	return out
}

// axisLine finds the time axis: the pixel row with the longest line of its
// grey (#666), which spans the timeline's width.
func axisLine(img image.Image) (y, left, right int) {
	bd := img.Bounds()
	best := 0
	for yy := bd.Min.Y; yy < bd.Max.Y; yy++ {
		n, l, r := 0, bd.Max.X, -1
		for x := bd.Min.X; x < bd.Max.X; x++ {
			if near(img, x, yy, [3]int{0x66, 0x66, 0x66}) {
				n++
				l, r = min(l, x), max(r, x)
			}
		}
		if n > best {
			best, y, left, right = n, yy, l, r
		}
	}
	return y, left, right
}

// wantBars reads the screenshot: above the time axis, the legend's swatch
// of each colour; below it, in the timeline's width, one bar per node top
// to bottom in the page's order (by batch), red where the node failed and
// green where it finished, each ending at the timeline's right edge.
func wantBars(t *testing.T, shot string, res orchestrate.Result) {
	t.Helper()
	fh, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatal(err)
	}
	bd := img.Bounds()
	axisY, left, right := axisLine(img)
	if right-left < bd.Dx()/2 {
		t.Fatalf("screenshot %s: no time axis (longest grey line at y=%d, x=%d..%d)", shot, axisY, left, right)
	}
	legend := image.Rect(bd.Min.X, bd.Min.Y, bd.Max.X, axisY)
	for state, rgb := range map[string][3]int{"finished": finishedRGB, "failed": failedRGB} {
		if len(colourBands(img, legend, state, rgb, 12)) != 1 {
			t.Errorf("screenshot %s: no one %s swatch above the axis (y=%d)", shot, state, axisY)
		}
	}
	track := image.Rect(left, axisY+1, right+1, bd.Max.Y)
	bars := append(colourBands(img, track, "finished", finishedRGB, 5), colourBands(img, track, "failed", failedRGB, 5)...)
	sort.Slice(bars, func(i, j int) bool { return bars[i].top < bars[j].top })
	order := slices.Clone(res.Nodes)
	sort.SliceStable(order, func(i, j int) bool { return order[i].Batch < order[j].Batch })
	var want, seen []string
	for _, n := range order {
		want = append(want, n.Node+" "+n.State)
	}
	for i, b := range bars {
		name := "?"
		if i < len(order) {
			name = order[i].Node
		}
		seen = append(seen, name+" "+b.state)
		if h := b.bottom - b.top + 1; h < 12 || h > 18 {
			t.Errorf("%s's %s bar is %d pixels high: %+v", name, b.state, h, b)
		}
		if b.right < right-1 || b.right-b.left < 6 {
			t.Errorf("%s's %s bar spans x=%d..%d; the timeline ends at x=%d: a result lasts to the end", name, b.state, b.left, b.right, right)
		}
	}
	if !slices.Equal(seen, want) {
		t.Errorf("bars top to bottom:\n%v\nwant:\n%v", seen, want)
	}
	t.Logf("screenshot: time axis at y=%d, x=%d..%d; %d bars", axisY, left, right, len(bars))
}

// cropPNG writes src cut below its last non-white row (plus a margin) to dst.
func cropPNG(src, dst string) error {
	fh, err := os.Open(src)
	if err != nil {
		return err
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		return err
	}
	bd := img.Bounds()
	last := bd.Min.Y
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			if r, g, b, _ := img.At(x, y).RGBA(); r>>8 < 250 || g>>8 < 250 || b>>8 < 250 {
				last = y
				break
			}
		}
	}
	sub, ok := img.(interface {
		SubImage(image.Rectangle) image.Image
	})
	if !ok {
		return fmt.Errorf("%s: cannot crop a %T", src, img)
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, sub.SubImage(image.Rect(bd.Min.X, bd.Min.Y, bd.Max.X, min(bd.Max.Y, last+16)))); err != nil {
		return err
	}
	return os.WriteFile(dst, buf.Bytes(), 0o644)
}

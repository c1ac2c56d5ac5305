package render

import (
	"bytes"
	"encoding/xml"
	"io"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/serfdeploy/serfdeploy/internal/iostreams"
	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/testkit/junitcheck"
)

func intp(i int) *int { return &i }

func sample() *orchestrate.Result {
	start := time.Date(2026, 11, 24, 20, 0, 0, 0, time.UTC)
	return &orchestrate.Result{
		ID: "jenkins-release-7", Kind: "deploy", Module: "motd", Ref: "v2", Environment: "production",
		Build:   &protocol.Build{Tag: "jenkins-release-7", URL: "https://ci.example/job/release/7/"},
		Masters: []orchestrate.MasterResult{{Node: "master-01", Phase: "triggered", Commit: "abc123"}},
		Nodes: []orchestrate.NodeResult{
			{Node: "agent-01", State: "finished", Outcome: protocol.Outcome{ExitCode: intp(2), Changed: 1, Total: 8, DurationSec: 2.5}},
			{Node: "agent-02", State: "failed", Outcome: protocol.Outcome{Reason: "resources_failed", ExitCode: intp(6), Changed: 1, Failed: 1, Total: 9, DurationSec: 3.1, FailedResources: []protocol.FailedResource{{Resource: "Exec[boom]", Message: "'/bin/false' returned 1 instead of one of [0]"}}}},
			{Node: "agent-03", State: "lost", Outcome: protocol.Outcome{Message: "serf reports the node failed before its run finished"}},
			{Node: "agent-04", State: "timeout", Outcome: protocol.Outcome{Message: "still unfinished at the 30m timeout (last seen running)"}},
		},
		Started: start, Finished: start.Add(90 * time.Second), ExitCode: 1, Outcome: "1 finished, 1 failed, 1 lost, 1 timeout: a puppet run failed or did not happen (exit 1)",
	}
}

func TestJUnit(t *testing.T) {
	var buf bytes.Buffer
	if err := JUnit(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), `<?xml version="1.0" encoding="UTF-8"?>`) {
		t.Fatalf("no XML declaration:\n%s", buf.String())
	}
	var doc junitcheck.Doc
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	s := doc.Suites[0]
	if len(doc.Suites) != 1 || s.Tests != 4 || s.Failures != 1 || s.Errors != 2 || s.Time != "90.000" || s.Name != "serfdeploy.production.motd" {
		t.Fatalf("suite %+v", s)
	}
	c := s.Cases
	if c[0].Name != "agent-01" || c[0].Failure != nil || c[0].Error != nil || c[0].Time != "2.500" || c[0].Classname != "serfdeploy.production.motd" {
		t.Fatalf("passing case %+v", c[0])
	}
	if c[1].Failure == nil || !strings.Contains(c[1].Failure.Message, "resources_failed") || !strings.Contains(c[1].Failure.Body, "Exec[boom]: '/bin/false' returned 1") {
		t.Fatalf("failed case %+v", c[1])
	}
	if c[2].Error == nil || c[2].Error.Type != "lost" || !strings.Contains(c[2].Error.Message, "serf reports the node failed") {
		t.Fatalf("lost case %+v", c[2])
	}
	if c[3].Error == nil || c[3].Error.Type != "timeout" {
		t.Fatalf("timeout case %+v", c[3])
	}
	props := map[string]string{}
	for _, p := range s.Props {
		props[p.Name] = p.Value
	}
	if props["build_url"] != "https://ci.example/job/release/7/" || !strings.HasPrefix(props["master.master-01"], "triggered abc123") {
		t.Fatalf("properties %v", props)
	}
}

func TestSummaryAndMarkdown(t *testing.T) {
	var buf bytes.Buffer
	if err := Summary(&buf, sample(), iostreams.ColorScheme{}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"deploy jenkins-release-7: motd at v2", "agent-02  failed", "agent-02: Exec[boom]: '/bin/false' returned 1", "(exit 1)"} {
		if !strings.Contains(out, want) {
			t.Fatalf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Fatal("escape codes without colour")
	}
	buf.Reset()
	res := sample()
	res.Nodes[1].Message = "pipe | and <b>markup</b>"
	if err := Markdown(&buf, res); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	if !strings.Contains(md, "| agent-02 | failed | 6 | 1 | 1 | 9 |") || strings.Contains(md, "<b>") || !strings.Contains(md, `pipe \| and`) {
		t.Fatalf("markdown:\n%s", md)
	}
}

// Text as nodes really send it: Puppet's colours, terminal titles, NUL and
// other C0 controls, broken UTF-8, a CDATA terminator.
const (
	puppetColour = "\x1b[1;31mError: Could not apply\x1b[0m"
	oscTitle     = "\x1b]0;puppet\x07"
	controls     = "nul\x00 bel\x07 bs\x08 vt\x0b ff\x0c us\x1f del\x7f c1\u0085\u009b"
	badUTF8      = "bad \xff\xfe \xc3 utf8"
	cdataEnd     = "]]> <![CDATA[ </failure> & <x>"
)

// hostileMessage mixes all of them, with "é" straddling the cuts at 300,
// 160 and 200 bytes.
func hostileMessage() string {
	var b strings.Builder
	b.WriteString(puppetColour + oscTitle + controls + badUTF8 + cdataEnd)
	for b.Len() < 2000 {
		b.WriteString("é\x1b[0m\x00")
	}
	return b.String()
}

// bigMessage is 100 kB, with a multibyte character at the 8 kB cut.
func bigMessage() string {
	return "\x1b[31m" + strings.Repeat("x", maxText-6) + strings.Repeat("日", 40000) + "\x1b[0m"
}

func hostileResult() *orchestrate.Result {
	res := sample()
	res.Ref = "v2\x1b[0m"
	res.Build.Tag = "tag\x00`|"
	res.Outcome = "1 failed\x1b[0m (exit 1)"
	res.StatusSource = "the logging service\x07"
	res.Masters[0].Message = "synced\x1b[32m ok\x1b[0m " + hostileMessage()
	res.Nodes[0].Message = bigMessage()
	res.Nodes[1].Message = hostileMessage()
	res.Nodes[1].Reason = "resources_failed\x1b[0m"
	res.Nodes[1].FailedResources = append(res.Nodes[1].FailedResources,
		protocol.FailedResource{Resource: "Exec[\x1b[31mcolour\x1b[0m]\x00", Message: hostileMessage()},
		protocol.FailedResource{Resource: "File[/big]", Message: bigMessage()})
	res.Nodes[2].Message = controls + badUTF8
	res.Nodes[3].Message = cdataEnd + puppetColour
	return res
}

// checkXML parses the JUnit output as strictly as Jenkins does: Go's strict
// decoder over every token, then xmllint, then into junitcheck.Doc.
func checkXML(t *testing.T, b []byte) *junitcheck.Doc {
	t.Helper()
	doc, err := junitcheck.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// renderHostile renders hostileResult with write and checks what every
// renderer owes its reader: no ESC or NUL (raw or JSON-escaped), valid
// UTF-8.
func renderHostile(t *testing.T, name string, write func(io.Writer, *orchestrate.Result) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := write(&buf, hostileResult()); err != nil {
		t.Fatal(err)
	}
	out := buf.Bytes()
	for _, bad := range []string{"\x1b", "\x00", `\u001b`, `\u0000`} {
		if bytes.Contains(out, []byte(bad)) {
			t.Errorf("%s: output carries %q", name, bad)
		}
	}
	if !utf8.Valid(out) {
		t.Errorf("%s: invalid UTF-8 in the output", name)
	}
	return out
}

func TestJUnitHostileText(t *testing.T) {
	res := hostileResult()
	out := renderHostile(t, "junit", JUnit)
	doc := checkXML(t, out)
	s := doc.Suites[0]
	if len(s.Cases) != len(res.Nodes) || s.Tests != len(res.Nodes) || s.Failures != 1 || s.Errors != 2 {
		t.Fatalf("suite: %d cases, tests=%d failures=%d errors=%d", len(s.Cases), s.Tests, s.Failures, s.Errors)
	}
	c := s.Cases
	if c[0].Failure != nil || c[0].Error != nil || c[0].SystemOut == nil || !strings.Contains(*c[0].SystemOut, "[cut: 8192 of") {
		t.Fatalf("finished case with a 100 kB message: %+v", c[0])
	}
	if c[1].Failure == nil || !strings.Contains(c[1].Failure.Message, "Error: Could not apply") ||
		!strings.Contains(c[1].Failure.Body, "Exec[colour]: Error: Could not apply") ||
		!strings.Contains(c[1].Failure.Body, cdataEnd) || !strings.Contains(c[1].Failure.Body, "[cut: 8192 of") {
		t.Fatalf("failed case: %+v", c[1].Failure)
	}
	if c[2].Error == nil || c[2].Error.Type != "lost" || !strings.Contains(c[2].Error.Message, "nul bel bs vt ff us del c1") ||
		!strings.Contains(c[2].Error.Body, "bad \ufffd\ufffd \ufffd utf8") {
		t.Fatalf("lost case: %+v", c[2].Error)
	}
	if c[3].Error == nil || !strings.Contains(c[3].Error.Body, cdataEnd+"Error: Could not apply") {
		t.Fatalf("timeout case: %+v", c[3].Error)
	}
	if !strings.Contains(s.SystemOut, "master master-01: code sync triggered (abc123): synced ok") {
		t.Fatalf("suite output:\n%s", s.SystemOut)
	}
	// Two 100 kB messages and a 100 kB resource message, each capped.
	if len(out) > 60<<10 {
		t.Fatalf("JUnit output is %d bytes: messages are not capped", len(out))
	}
}

// TestJUnitOldFailure pins the original defect: Puppet's colour codes in a
// failed resource's message made the file invalid for Jenkins.
func TestJUnitOldFailure(t *testing.T) {
	res := sample()
	res.Nodes[1].FailedResources[0].Message = "\x1b[0;31mError: /Stage[main]/Motd/Exec[boom]: returned 1\x1b[0m"
	var buf bytes.Buffer
	if err := JUnit(&buf, res); err != nil {
		t.Fatal(err)
	}
	doc := checkXML(t, buf.Bytes())
	if len(doc.Suites[0].Cases) != 4 || !strings.Contains(doc.Suites[0].Cases[1].Failure.Body, "Exec[boom]: Error: /Stage[main]/Motd/Exec[boom]: returned 1\n") {
		t.Fatalf("%+v", doc.Suites[0].Cases)
	}
}

func TestJUnitStates(t *testing.T) {
	want := map[string]string{
		"finished": "pass", "failed": "failure", "busy": "failure", "disabled": "failure", "stale": "failure",
		"lost": "error", "timeout": "error", "missed": "error", "interrupted": "error",
		"waiting": "error", "pending": "error", "running": "error", "skipped": "skipped",
	}
	res := sample()
	res.Nodes = nil
	for state := range want {
		res.Nodes = append(res.Nodes, orchestrate.NodeResult{Node: "node-" + state, State: state, JoinedLate: state == "failed" || state == "finished"})
	}
	var buf bytes.Buffer
	if err := JUnit(&buf, res); err != nil {
		t.Fatal(err)
	}
	doc := checkXML(t, buf.Bytes())
	if len(doc.Suites[0].Cases) != len(want) {
		t.Fatalf("%d cases for %d nodes", len(doc.Suites[0].Cases), len(want))
	}
	for _, c := range doc.Suites[0].Cases {
		state := strings.TrimPrefix(c.Name, "node-")
		got := "pass"
		switch {
		case c.Failure != nil:
			got = "failure"
		case c.Error != nil:
			got = "error"
		case c.Skipped != nil:
			got = "skipped"
		}
		if got != want[state] {
			t.Errorf("%s: %s, want %s", state, got, want[state])
		}
	}
	for _, c := range doc.Suites[0].Cases {
		switch c.Name {
		case "node-failed":
			if !strings.Contains(c.Failure.Message, "(joined late: not in the CLI's target list") || !strings.Contains(c.Failure.Body, "joined late") {
				t.Errorf("joined late failure: %+v", c.Failure)
			}
		case "node-finished":
			if c.SystemOut == nil || !strings.Contains(*c.SystemOut, "joined late") {
				t.Errorf("joined late pass: %+v", c)
			}
		}
	}
}

func TestJUnitClassnameIsStable(t *testing.T) {
	a, b := sample(), sample()
	b.ID = "jenkins-release-8"
	if classname(a) != classname(b) || classname(a) != "serfdeploy.production.motd" {
		t.Fatalf("classnames %q and %q", classname(a), classname(b))
	}
	var buf bytes.Buffer
	if err := JUnit(&buf, b); err != nil {
		t.Fatal(err)
	}
	doc := checkXML(t, buf.Bytes())
	if s := doc.Suites[0]; s.Name != "serfdeploy.production.motd" || strings.Contains(s.Name, "jenkins-release") || s.Cases[0].Classname != s.Name {
		t.Fatalf("suite %q, case classname %q", s.Name, s.Cases[0].Classname)
	}
	cases := []struct {
		kind, module, env, want string
	}{
		{"deploy", "my.module", "prod.eu", "serfdeploy.prod_eu.my_module"},
		{"deploy", "motd", "", "serfdeploy.default.motd"},
		{"run", "", "qa", "serfdeploy.qa.run"},
		{"run", "motd", "", "serfdeploy.default.run"},
		{"deploy", "a b/c\x1b[0m", "é", "serfdeploy._.a_b_c__0m"},
	}
	for _, c := range cases {
		got := classname(&orchestrate.Result{Kind: c.kind, Module: c.module, Environment: c.env})
		if got != c.want || strings.Count(got, ".") != 2 {
			t.Errorf("%s %q in %q: %q, want %q", c.kind, c.module, c.env, got, c.want)
		}
	}
}

func TestJUnitSuiteOutput(t *testing.T) {
	res := sample()
	res.Masters[0].Message = "fetched v2"
	var buf bytes.Buffer
	if err := JUnit(&buf, res); err != nil {
		t.Fatal(err)
	}
	out := checkXML(t, buf.Bytes()).Suites[0].SystemOut
	for _, want := range []string{
		"deploy id: jenkins-release-7\n", "kind: deploy\n", "module: motd\n", "ref: v2\n", "environment: production\n",
		"build: https://ci.example/job/release/7/\n", "exit code: 1\n",
		"outcome: 1 finished, 1 failed, 1 lost, 1 timeout: a puppet run failed or did not happen (exit 1)\n",
		"master master-01: code sync triggered (abc123): fetched v2\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("suite output lacks %q:\n%s", want, out)
		}
	}
}

func earlyExit() *orchestrate.Result {
	start := time.Date(2026, 11, 24, 20, 0, 0, 0, time.UTC)
	return &orchestrate.Result{
		ID: "jenkins-release-9", Kind: "deploy", Module: "motd", Ref: "v3", Environment: "production",
		Started: start, Finished: start.Add(time.Second), ExitCode: orchestrate.ExitInfra,
		Error: "serf agent at 127.0.0.1:7373 is unreachable: \x1b[31mconnection refused\x1b[0m",
	}
}

func TestJUnitEarlyExit(t *testing.T) {
	var buf bytes.Buffer
	if err := JUnit(&buf, earlyExit()); err != nil {
		t.Fatal(err)
	}
	s := checkXML(t, buf.Bytes()).Suites[0]
	if s.Tests != 1 || s.Errors != 1 || len(s.Cases) != 1 {
		t.Fatalf("suite %+v", s)
	}
	c := s.Cases[0]
	msg := "serf agent at 127.0.0.1:7373 is unreachable: connection refused"
	if c.Name != "serfdeploy" || c.Classname != "serfdeploy.production.motd" || c.Error == nil ||
		c.Error.Type != "exit-5" || c.Error.Message != msg {
		t.Fatalf("case %+v error %+v", c, c.Error)
	}
	if !strings.Contains(s.SystemOut, "outcome: "+msg+" (exit 5)") {
		t.Fatalf("suite output:\n%s", s.SystemOut)
	}
	buf.Reset()
	if err := Markdown(&buf, earlyExit()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "**"+msg+" (exit 5)**") {
		t.Fatalf("markdown:\n%s", buf.String())
	}
	buf.Reset()
	if err := Summary(&buf, earlyExit(), iostreams.ColorScheme{}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(buf.String(), msg+" (exit 5)\n") {
		t.Fatalf("summary:\n%s", buf.String())
	}
}

func TestMarkdownSummaryHostileText(t *testing.T) {
	for name, write := range map[string]func(io.Writer, *orchestrate.Result) error{
		"markdown": Markdown,
		"summary":  func(w io.Writer, r *orchestrate.Result) error { return Summary(w, r, iostreams.ColorScheme{}) },
	} {
		out := string(renderHostile(t, name, write))
		if !strings.Contains(out, "Error: Could not apply") || len(out) > 60<<10 {
			t.Errorf("%s: %d bytes, message lost or not capped", name, len(out))
		}
	}
	for _, l := range strings.Split(string(renderHostile(t, "markdown", Markdown)), "\n") {
		if strings.HasPrefix(l, "| agent-") && strings.Count(strings.ReplaceAll(l, `\|`, ""), "|") != 9 {
			t.Errorf("table row broken: %q", l)
		}
	}
}

func TestJSONHostileText(t *testing.T) {
	res := hostileResult()
	out := renderHostile(t, "json", func(w io.Writer, r *orchestrate.Result) error { return JSON(w, r) })
	var got orchestrate.Result
	if err := protocol.DecodeStrict(out, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Nodes) != 4 || got.Nodes[1].FailedResources[1].Resource != "Exec[colour]" || got.Ref != "v2" ||
		!strings.HasPrefix(got.Nodes[1].Message, "Error: Could not apply") {
		t.Fatalf("decoded %+v", got)
	}
	if !reflect.DeepEqual(res, hostileResult()) {
		t.Fatal("JSON changed the caller's result")
	}
}

// TestJSONCleansEveryField fills every string of a Result, so that a field
// added later and not cleaned fails here.
func TestJSONCleansEveryField(t *testing.T) {
	const dirty = "\x1b[31mok\x00\xff"
	res := &orchestrate.Result{Build: &protocol.Build{}, Masters: make([]orchestrate.MasterResult, 1),
		Nodes: []orchestrate.NodeResult{{Outcome: protocol.Outcome{FailedResources: make([]protocol.FailedResource, 1)}}}}
	walkStrings(reflect.ValueOf(res), func(v reflect.Value) { v.SetString(dirty) })
	var buf bytes.Buffer
	if err := JSON(&buf, res); err != nil {
		t.Fatal(err)
	}
	var got orchestrate.Result
	if err := protocol.DecodeStrict(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	n := 0
	walkStrings(reflect.ValueOf(&got), func(v reflect.Value) {
		n++
		if v.String() != "ok\ufffd" {
			t.Errorf("a field is %q", v.String())
		}
	})
	if n < 20 {
		t.Fatalf("only %d strings decoded", n)
	}
}

func walkStrings(v reflect.Value, f func(reflect.Value)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			walkStrings(v.Elem(), f)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				walkStrings(v.Field(i), f)
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			walkStrings(v.Index(i), f)
		}
	case reflect.String:
		f(v)
	}
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

func TestSummaryColumnsAlignWithColour(t *testing.T) {
	ios := iostreams.Test(nil, io.Discard, io.Discard)
	if err := ios.SetColorMode(iostreams.ColorAlways); err != nil {
		t.Fatal(err)
	}
	res := sample()
	res.Nodes = append(res.Nodes,
		orchestrate.NodeResult{Node: "agent-05", State: "running"},
		orchestrate.NodeResult{Node: "agent-06-long-name", State: "skipped"},
		orchestrate.NodeResult{Node: "agent-07", State: "interrupted", Outcome: protocol.Outcome{Message: "日本語 detail"}})
	var buf bytes.Buffer
	if err := Summary(&buf, res, ios.ColorScheme()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "\x1b[") {
		t.Fatal("no colour with colour on")
	}
	lines := strings.Split(ansi.ReplaceAllString(buf.String(), ""), "\n")
	head := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "NODE ") {
			head = i
		}
	}
	if head < 0 {
		t.Fatalf("no table header:\n%s", buf.String())
	}
	header := []rune(lines[head])
	var starts []int
	for i := range header {
		if header[i] != ' ' && (i == 0 || header[i-1] == ' ') {
			starts = append(starts, i)
		}
	}
	if len(starts) != 8 {
		t.Fatalf("header %q", lines[head])
	}
	for _, l := range lines[head+1 : head+1+len(res.Nodes)] {
		row := []rune(l)
		for i, c := range starts[1:] {
			if c >= len(row) && i == len(starts)-2 {
				break // no detail
			}
			if c >= len(row) || row[c-1] != ' ' || row[c] == ' ' {
				t.Errorf("row %q does not start a column at %d as the header does:\n%s", l, c, lines[head])
				break
			}
		}
	}
}

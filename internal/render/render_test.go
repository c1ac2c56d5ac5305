package render

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/internal/iostreams"
	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/protocol"
)

func intp(i int) *int { return &i }

func sample() *orchestrate.Result {
	start := time.Date(2026, 11, 24, 20, 0, 0, 0, time.UTC)
	return &orchestrate.Result{
		ID: "jenkins-release-7", Kind: "deploy", Module: "motd", Ref: "v2", Environment: "production",
		Build:   &protocol.Build{Tag: "jenkins-release-7", URL: "https://ci.example/job/release/7/"},
		Masters: []orchestrate.MasterResult{{Node: "master-01", Phase: "triggered", Commit: "abc123"}},
		Nodes: []orchestrate.NodeResult{
			{Node: "agent-01", State: "finished", ExitCode: intp(2), Changed: 1, Total: 8, DurationSec: 2.5},
			{Node: "agent-02", State: "failed", Reason: "resources_failed", ExitCode: intp(6), Changed: 1, Failed: 1, Total: 9, DurationSec: 3.1,
				FailedResources: []orchestrate.FailedResource{{Resource: "Exec[boom]", Message: "'/bin/false' returned 1 instead of one of [0]"}}},
			{Node: "agent-03", State: "lost", Message: "serf reports the node failed before its run finished"},
			{Node: "agent-04", State: "timeout", Message: "still unfinished at the 30m timeout (last seen running)"},
		},
		Started: start, Finished: start.Add(90 * time.Second), ExitCode: 1, Outcome: "1 finished, 1 failed, 1 lost, 1 timeout: a puppet run failed or did not happen (exit 1)",
	}
}

// junitDoc is what Jenkins' JUnit plugin reads: testsuites > testsuite
// (name, tests, failures, errors, time) > testcase (name, classname, time)
// with an optional failure or error element carrying a message attribute.
type junitDoc struct {
	XMLName xml.Name `xml:"testsuites"`
	Suites  []struct {
		Name     string `xml:"name,attr"`
		Tests    int    `xml:"tests,attr"`
		Failures int    `xml:"failures,attr"`
		Errors   int    `xml:"errors,attr"`
		Time     string `xml:"time,attr"`
		Props    []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:"value,attr"`
		} `xml:"properties>property"`
		Cases []struct {
			Name      string `xml:"name,attr"`
			Classname string `xml:"classname,attr"`
			Time      string `xml:"time,attr"`
			Failure   *struct {
				Message string `xml:"message,attr"`
				Type    string `xml:"type,attr"`
				Body    string `xml:",chardata"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
				Type    string `xml:"type,attr"`
			} `xml:"error"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func TestJUnit(t *testing.T) {
	var buf bytes.Buffer
	if err := JUnit(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), `<?xml version="1.0" encoding="UTF-8"?>`) {
		t.Fatalf("no XML declaration:\n%s", buf.String())
	}
	var doc junitDoc
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	s := doc.Suites[0]
	if len(doc.Suites) != 1 || s.Tests != 4 || s.Failures != 1 || s.Errors != 2 || s.Time != "90.000" || s.Name != "serfdeploy.deploy.jenkins-release-7" {
		t.Fatalf("suite %+v", s)
	}
	c := s.Cases
	if c[0].Name != "agent-01" || c[0].Failure != nil || c[0].Error != nil || c[0].Time != "2.500" || c[0].Classname != s.Name {
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

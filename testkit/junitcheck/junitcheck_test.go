package junitcheck

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	good := `<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="s" tests="1" failures="1" errors="0" time="1.0">
<testcase name="agent-01" classname="serfdeploy.production.motd" time="1.0"><failure message="m" type="failed">body</failure></testcase>
</testsuite></testsuites>`
	doc, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c := doc.Suites[0].Cases; len(c) != 1 || c[0].Failure == nil || c[0].Failure.Body != "body" {
		t.Fatalf("cases %+v", c)
	}
	for name, bad := range map[string]string{
		"control character": strings.Replace(good, "body", "bo\x1bdy", 1),
		"unclosed element":  strings.TrimSuffix(good, "</testsuites>"),
		"two suites":        strings.Replace(good, "</testsuites>", `<testsuite name="t"/></testsuites>`, 1),
		"cdata end in text": strings.Replace(good, "body", "a]]>b", 1),
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

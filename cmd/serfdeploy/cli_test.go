package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/serfdeploy/serfdeploy/internal/iostreams"
	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

// oneLine checks the error contract: a single line on stderr, no stack
// trace, no help dump. deploy and run first name their deploy id, on a
// line of its own.
func oneLine(t *testing.T, r deployrig.Result, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
	if len(lines) > 1 && idLine.MatchString(lines[0]) {
		lines = lines[1:]
	}
	if len(lines) != 1 || !strings.Contains(r.Stderr, want) {
		t.Fatalf("want one line containing %q:\n%s", want, r)
	}
	for _, bad := range []string{"panic", "goroutine", "USAGE:"} {
		if strings.Contains(r.Stderr+r.Stdout, bad) {
			t.Fatalf("output contains %q:\n%s", bad, r)
		}
	}
}

var idLine = regexp.MustCompile(`^serfdeploy: (deploy|run) id [A-Za-z0-9._:+-]+$`)

// deadAddr is a loopback address with nothing listening.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestBadInput(t *testing.T) {
	dead := deadAddr(t)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown flag", []string{"members", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"unknown command", []string{"deploi"}, 2, `unknown command "deploi"`},
		{"tag without =", []string{"members", "--tag", "segmentqa"}, 2, "must be key=regexp"},
		{"tag regexp does not compile", []string{"members", "--tag", "segment=qa(["}, 2, "does not compile"},
		{"missing module", []string{"deploy", "--ref", "v1"}, 2, "deploy needs --module"},
		{"module with shell metacharacters", []string{"deploy", "--rpc-addr", dead, "--module", "motd;rm -rf /", "--ref", "v1"}, 2, "module name"},
		{"bad ref", []string{"deploy", "--rpc-addr", dead, "--module", "motd", "--ref", "--upload-pack=x"}, 2, "git ref"},
		{"bad format", []string{"members", "--format", "yaml"}, 2, "--format"},
		{"bad color", []string{"members", "--color", "pink"}, 2, "--color"},
		{"stray argument", []string{"members", "extra"}, 2, "takes no arguments"},
		{"agent not running", []string{"members", "--rpc-addr", dead}, 5, "not reachable"},
		// The tag is taken whole: a comma in its regexp was split off as
		// another tag (exit 2, `"2]" must be key=regexp`).
		{"tag regexp with a comma", []string{"members", "--rpc-addr", dead, "--tag", "fqdn=web-0[1,2]"}, 5, "not reachable"},
		{"agent not running on deploy", []string{"deploy", "--rpc-addr", dead, "--module", "motd", "--ref", "v1"}, 5, "not reachable"},
		{"report without logging service", []string{"report", "some-id"}, 2, "--log-url"},
		{"report with unreachable logging service", []string{"report", "--log-url", "http://" + dead, "some-id"}, 5, dead},
		{"report bad id", []string{"report", "--log-url", "http://" + dead, "bad id;x"}, 2, "deploy id"},
		{"5 kB deploy id, shortened in the message", []string{"deploy", "--rpc-addr", dead, "--module", "motd", "--ref", "v1", "--id", strings.Repeat("x", 5000) + ";"}, 2, "deploy id"},
		{"bad --master-tag found before connecting", []string{"deploy", "--rpc-addr", dead, "--module", "motd", "--ref", "v1", "--master-tag", "role"}, 2, "--master-tag"},
		{"bad status --id found before connecting", []string{"status", "--rpc-addr", dead, "--id", "bad id"}, 2, "deploy id"},
		{"json output still ends with the one line on stderr", []string{"deploy", "--format", "json", "--rpc-addr", dead, "--module", "motd", "--ref", "v1"}, 5, "not reachable"},
		{"logging service down before deploy", []string{"deploy", "--log-url", "http://" + dead, "--rpc-addr", dead, "--module", "motd", "--ref", "v1"}, 5, "nothing was deployed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := deployrig.Run(t, bin, nil, c.args...)
			if r.Code != c.code {
				t.Fatalf("exit %d, want %d\n%s", r.Code, c.code, r)
			}
			oneLine(t, r, c.want)
			if len(r.Stderr) > 600 {
				t.Fatalf("a %d-byte error message", len(r.Stderr))
			}
		})
	}
}

func TestHelpListsExitCodes(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"deploy", "--help"}} {
		r := deployrig.Run(t, bin, nil, args...)
		if r.Code != 0 {
			t.Fatalf("%v: %s", args, r)
		}
		for _, want := range []string{"EXIT CODES", " 0  every target finished", " 5  infrastructure", "Worth an automatic retry: 5"} {
			if !strings.Contains(r.Stdout, want) {
				t.Fatalf("%v: help lacks %q:\n%s", args, want, r.Stdout)
			}
		}
	}
}

func TestExplainIsTheOnlyMapping(t *testing.T) {
	// run() without a process: the same contract in-process, for coverage
	// of the error mapping.
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"serfdeploy", "members", "--tag", "=x"}, iostreams.Test(nil, &out, &errb), func(string) string { return "" })
	if code != 2 || !strings.HasPrefix(errb.String(), "serfdeploy: ") || strings.Count(errb.String(), "\n") != 1 {
		t.Fatalf("exit %d stderr %q", code, errb.String())
	}
}

func TestHandleOutsideSerf(t *testing.T) {
	cfg := t.TempDir() + "/node.yaml"
	if err := os.WriteFile(cfg, []byte("state_dir: "+t.TempDir()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := deployrig.Run(t, bin, nil, "handle", "--config", cfg)
	if r.Code != 2 {
		t.Fatalf("%s", r)
	}
	oneLine(t, r, "SERF_EVENT is not set")
	r = deployrig.Run(t, bin, []string{"SERF_EVENT=query", "SERF_QUERY_NAME=puppet-status", "SERF_SELF_NAME=n1"}, "handle", "--config", cfg+".missing")
	if r.Code == 0 || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
		t.Fatalf("missing config: %s", r)
	}
}

package handler

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// TestAdHocRunKeepsPuppetsOwnEnvironment: `serfdeploy run` without
// --environment leaves the environment to Puppet (puppet.conf), as `mco
// puppet runonce` does; it forced node.yaml's (default production). A run
// that names one, and a deploy's run, still pass it.
func TestAdHocRunKeepsPuppetsOwnEnvironment(t *testing.T) {
	argsFile := filepath.Join(t.TempDir(), "args")
	// A stand-in Puppet that records its command line, one word a line.
	n := testNode(t, "/bin/sh", "-c", `printf '%s\n' "$@" > `+argsFile, "puppet",
		"agent", "--test", "--environment", "'{environment}'", "--vardir", "/x/{environment}")
	n.cfg.Environment = "configured"
	done := make(chan error, 1)
	n.worker = func(kind, id string) (int, error) {
		// The worker waits for the handler's state lock: it runs beside it.
		go func() { done <- n.Work(context.Background(), nil, kind, id) }()
		return os.Getpid(), nil
	}
	cases := []struct {
		request string
		want    []string
		not     string
	}{
		{`{"id":"adhoc-1"}`, []string{"agent", "--test", "--vardir", "/x/configured"}, "--environment"},
		{`{"id":"adhoc-2","env":"staging"}`, []string{"agent", "--test", "--environment", "staging", "--vardir", "/x/staging"}, ""},
		{`{"id":"deploy-1","module":"motd","ref":"v1"}`, []string{"agent", "--test", "--environment", "configured", "--vardir", "/x/configured"}, ""},
	}
	for _, c := range cases {
		if a := ask(t, n, c.request); a.Result != protocol.RunStarted {
			t.Fatalf("%s: %+v", c.request, a)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(argsFile)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Fields(string(b))
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Fatalf("%s ran puppet %v, want %v", c.request, got, c.want)
		}
	}
}

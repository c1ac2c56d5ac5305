package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/serfdeploy/serfdeploy/internal/fleet"
)

// runOnTTY runs serfdeploy under script(1), which gives it a terminal, and
// returns everything the terminal showed.
func runOnTTY(t *testing.T, f *fleet.Fleet, env []string, args ...string) string {
	t.Helper()
	line := bin
	for _, a := range args {
		line += " '" + a + "'"
	}
	cmd := exec.Command("script", "-qec", line, "/dev/null")
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "TERM=xterm", "SERF_RPC_ADDR=" + f.Cluster.Node("master-01").RPCAddr}, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestTerminalOutput(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Fatal("script(1) from util-linux is needed for the terminal test")
	}
	f := qaFleet(t, fleet.Options{})
	out := runOnTTY(t, f, nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", "tty-1")...)
	if !strings.Contains(out, "\x1b[32mfinished") || !strings.Contains(out, "deploy tty-1: ") || !strings.Contains(out, "done") {
		t.Fatalf("on a terminal: want colour and the spinner's counts:\n%q", out)
	}
	if strings.Contains(out, "Z deploy id tty-1") {
		t.Fatalf("timestamps are for logs, not terminals:\n%q", out)
	}
	out = runOnTTY(t, f, []string{"NO_COLOR=1"}, deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", "tty-2")...)
	if strings.Contains(out, "\x1b[32m") || strings.Contains(out, "\x1b[31m") {
		t.Fatalf("NO_COLOR on a terminal still coloured:\n%q", out)
	}
}

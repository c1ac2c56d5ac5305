package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

// runOnTTY runs serfdeploy under script(1), which gives it a terminal, and
// returns everything the terminal showed.
func runOnTTY(t *testing.T, f *deployrig.Rig, env []string, args ...string) string {
	t.Helper()
	return runOnTTYLine(t, f, env, args, "")
}

// runOnTTYLine is runOnTTY with a shell redirection appended (e.g.
// "2>FILE").
func runOnTTYLine(t *testing.T, f *deployrig.Rig, env []string, args []string, redirect string) string {
	t.Helper()
	line := bin
	for _, a := range args {
		line += " '" + a + "'"
	}
	line += " " + redirect
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
	f := qaRig(t, deployrig.Options{})
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

	// --color never: no colour code at all, the spinner's frames included
	// (before, each frame came wrapped in the spinner's default colour).
	out = runOnTTY(t, f, nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", "tty-3", "--color", "never")...)
	if colourCode.MatchString(out) {
		t.Fatalf("--color never on a terminal: %q", colourCode.FindString(out))
	}
	// TERM=dumb: no spinner, so no cursor codes.
	out = runOnTTY(t, f, []string{"TERM=dumb"}, deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", "tty-4")...)
	if strings.Contains(out, "\x1b[?25l") || colourCode.MatchString(out) {
		t.Fatalf("TERM=dumb got escape codes:\n%q", out)
	}
	// stdout on the terminal, stderr to a file: the file gets no escape
	// code (before, stdout's colour decision was applied to stderr too).
	errFile := filepath.Join(t.TempDir(), "stderr")
	out = runOnTTYLine(t, f, nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", "tty-5"), "2>"+errFile)
	b, err := os.ReadFile(errFile)
	if err != nil || bytes.ContainsRune(b, 0x1b) || !strings.Contains(string(b), "finished") {
		t.Fatalf("stderr in a file: %v %q", err, b)
	}
	if !strings.Contains(out, "\x1b[32mfinished") {
		t.Fatalf("stdout on the terminal lost its colour:\n%q", out)
	}
}

var colourCode = regexp.MustCompile("\x1b\\[[0-9;]*m")

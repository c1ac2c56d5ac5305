package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

func TestFormatVersion(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.99.1", Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	clean := &debug.BuildInfo{GoVersion: "go1.99.1", Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.modified", Value: "false"},
	}}
	cases := []struct {
		version, built string
		info           *debug.BuildInfo
		want           string
	}{
		{"", "", &debug.BuildInfo{GoVersion: "go1.99.1"}, "dev (commit unknown, go1.99.1)"},
		{"1.2.3", "2026-12-02T00:00:00Z", stamped, "1.2.3 (commit 0123456789abcdef0123456789abcdef01234567, modified, committed 2026-12-01T10:00:00Z, built 2026-12-02T00:00:00Z, go1.99.1)"},
		{"1.2.3", "", clean, "1.2.3 (commit 0123456789abcdef0123456789abcdef01234567, go1.99.1)"},
	}
	for _, c := range cases {
		if got := formatVersion(c.version, c.built, c.info); got != c.want {
			t.Errorf("formatVersion(%q, %q): got\n%s\nwant\n%s", c.version, c.built, got, c.want)
		}
	}
	if got := formatVersion("", "", nil); !strings.HasPrefix(got, "dev (commit unknown, go") {
		t.Errorf("without build info: %s", got)
	}
}

func TestVersionFlagAndHelp(t *testing.T) {
	// The test binary is a plain `go build`: version "dev".
	for _, flag := range []string{"--version", "-v"} {
		r := deployrig.Run(t, bin, nil, flag)
		if r.Code != 0 || !strings.HasPrefix(r.Stdout, "serfdeploy version dev (") || strings.Count(r.Stdout, "\n") != 1 {
			t.Fatalf("%s: %s", flag, r)
		}
	}
	r := deployrig.Run(t, bin, nil, "--help")
	if !regexp.MustCompile(`(?m)^VERSION:\n +dev \(`).MatchString(r.Stdout) {
		t.Fatalf("--help has no VERSION section:\n%s", r.Stdout)
	}
}

func TestManPage(t *testing.T) {
	r := deployrig.Run(t, bin, nil, "man")
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("%s", r)
	}
	page := r.Stdout
	for _, want := range []string{
		`.TH serfdeploy 1 "" "serfdeploy dev" "User Commands"`,
		".SH deploy", ".SH install", `\fB--module\fP`,
		// The exit-code table stays a literal block, lines and all.
		".EX\nEXIT CODES:\n   0  every target finished",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
	for _, hidden := range []string{".SH worker", ".SH man", ".SH completion"} {
		if strings.Contains(page, hidden) {
			t.Errorf("man page shows a hidden command: %q", hidden)
		}
	}
}

// complete sources the bash script and asks it what it offers for words,
// the last one being the word under the cursor.
func complete(t *testing.T, script string, words ...string) string {
	t.Helper()
	prog := `. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _serfdeploy; echo "${COMPREPLY[*]}"`
	out, err := exec.Command("bash", append([]string{"-c", prog, "bash", script}, words...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("bash completion of %q: %v: %s", words, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestBashCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	r := deployrig.Run(t, bin, nil, "completion", "bash")
	if r.Code != 0 {
		t.Fatalf("%s", r)
	}
	script := filepath.Join(t.TempDir(), "serfdeploy")
	if err := os.WriteFile(script, []byte(r.Stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		words []string
		want  string
	}{
		{[]string{"serfdeploy", "dep"}, "deploy"},
		{[]string{"serfdeploy", "-"}, "--help -h --version -v"},
		{[]string{"serfdeploy", "deploy", "--mod"}, "--module"},
		{[]string{"serfdeploy", "--help", "ins"}, "install"},
		{[]string{"serfdeploy", "install", "--sys"}, "--systemd"},
		// After a flag that takes a value: nothing (bash then offers files).
		{[]string{"serfdeploy", "deploy", "--module", ""}, ""},
		{[]string{"serfdeploy", "nosuch", "--"}, ""},
	}
	for _, c := range cases {
		if got := complete(t, script, c.words...); got != c.want {
			t.Errorf("%q: got %q, want %q", c.words, got, c.want)
		}
	}
	// Every visible command is offered, hidden ones are not.
	all := " " + complete(t, script, "serfdeploy", "") + " "
	for _, cmd := range []string{"members", "deploy", "run", "status", "watch", "disable", "enable", "report", "handle", "install"} {
		if !strings.Contains(all, " "+cmd+" ") {
			t.Errorf("command %s not offered: %q", cmd, all)
		}
	}
	for _, hidden := range []string{"worker", "man", "completion"} {
		if strings.Contains(all, " "+hidden+" ") {
			t.Errorf("hidden command %s offered: %q", hidden, all)
		}
	}
}

func TestZshCompletion(t *testing.T) {
	r := deployrig.Run(t, bin, nil, "completion", "zsh")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "#compdef serfdeploy\n") {
		t.Fatalf("%s", r)
	}
	for _, want := range []string{"\tdeploy)\n", `'--module=[`, `'*--tag=[`, `'deploy:ship a module`} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("zsh completion lacks %q", want)
		}
	}
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Log("no zsh here: its syntax check is left to scripts/check-package.sh")
		return
	}
	if out, err := exec.Command(zsh, "-n", "-c", r.Stdout).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v: %s", err, out)
	}
}

func TestCompletionNeedsAShell(t *testing.T) {
	r := deployrig.Run(t, bin, nil, "completion", "fish")
	if r.Code != 2 {
		t.Fatalf("%s", r)
	}
	oneLine(t, r, "bash or zsh")
}

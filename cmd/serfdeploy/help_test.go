package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

// visibleCommands lists the commands `serfdeploy --help` shows.
func visibleCommands(t *testing.T) []string {
	t.Helper()
	r := deployrig.Run(t, bin, nil, "--help")
	if r.Code != 0 {
		t.Fatalf("%s", r)
	}
	_, rest, ok := strings.Cut(r.Stdout, "\nCOMMANDS:\n")
	if !ok {
		t.Fatalf("--help has no COMMANDS:\n%s", r.Stdout)
	}
	var cmds []string
	for _, line := range strings.Split(rest, "\n") {
		m := regexp.MustCompile(`^   ([a-z]+)[, ]`).FindStringSubmatch(line)
		if m == nil {
			break
		}
		cmds = append(cmds, m[1])
	}
	if len(cmds) < 10 {
		t.Fatalf("only %v in --help", cmds)
	}
	return cmds
}

// helpFlags are the flags a command's --help lists under OPTIONS, without
// --help itself.
func helpFlags(t *testing.T, cmd string) []string {
	t.Helper()
	r := deployrig.Run(t, bin, nil, cmd, "--help")
	if r.Code != 0 {
		t.Fatalf("%s", r)
	}
	_, opts, ok := strings.Cut(r.Stdout, "\nOPTIONS:\n")
	if !ok {
		t.Fatalf("%s --help has no OPTIONS:\n%s", cmd, r.Stdout)
	}
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^   --([a-z][a-z0-9-]*)`).FindAllStringSubmatch(opts, -1) {
		if m[1] != "help" {
			flags = append(flags, "--"+m[1])
		}
	}
	return flags
}

// helpCodes are the codes of the EXIT CODES section of a help text.
func helpCodes(help string) []int {
	_, table, ok := strings.Cut(help, "EXIT CODES:\n")
	if !ok {
		return nil
	}
	var codes []int
	for _, line := range strings.Split(table, "\n") {
		m := regexp.MustCompile(`^ +(\d)  `).FindStringSubmatch(line)
		if m == nil {
			if strings.TrimSpace(line) == "" {
				break
			}
			continue
		}
		n, _ := strconv.Atoi(m[1])
		codes = append(codes, n)
	}
	return codes
}

func codesOf(cmd string) []int {
	var out []int
	for _, c := range exitCodes[cmd] {
		out = append(out, c.code)
	}
	return out
}

// TestEachCommandShowsItsOwnExitCodes: members, status, handle... have
// codes of their own; deploy's table in their help would be wrong.
func TestEachCommandShowsItsOwnExitCodes(t *testing.T) {
	for _, cmd := range visibleCommands(t) {
		if cmd == "help" {
			continue // urfave/cli's own command: its --help is the app's
		}
		r := deployrig.Run(t, bin, nil, cmd, "--help")
		if got, want := helpCodes(r.Stdout), codesOf(cmd); !slices.Equal(got, want) || len(want) == 0 {
			t.Errorf("%s --help lists exit codes %v, want %v:\n%s", cmd, got, want, r.Stdout)
		}
	}
	if r := deployrig.Run(t, bin, nil, "members", "--help"); strings.Contains(r.Stdout, "--noop") {
		t.Errorf("members --help shows deploy's codes:\n%s", r.Stdout)
	}
}

// TestHelpCommand: `serfdeploy help deploy` is `serfdeploy deploy --help`.
func TestHelpCommand(t *testing.T) {
	want := deployrig.Run(t, bin, nil, "deploy", "--help")
	got := deployrig.Run(t, bin, nil, "help", "deploy")
	if got.Code != 0 || got.Stdout != want.Stdout {
		t.Fatalf("help deploy:\n%s\nwant:\n%s", got, want.Stdout)
	}
	if r := deployrig.Run(t, bin, nil, "help", "deploi"); r.Code != 2 {
		t.Fatalf("help of an unknown command: %s", r)
	}
}

// TestHandleByHandIsAUsageError: a person running `serfdeploy handle` made
// a usage error (2), also without a config file (it was 5 then).
func TestHandleByHandIsAUsageError(t *testing.T) {
	r := deployrig.Run(t, bin, nil, "handle", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	if r.Code != 2 {
		t.Fatalf("want exit 2: %s", r)
	}
	oneLine(t, r, "SERF_EVENT is not set")
}

// TestFlagUsageHasNoBackquotes: urfave/cli takes a `word` in a flag's usage
// for the value's placeholder (--expect-version status).
func TestFlagUsageHasNoBackquotes(t *testing.T) {
	placeholder := regexp.MustCompile(`(?m)^   (--[a-z][a-z0-9-]*) (\S+)`)
	for _, cmd := range visibleCommands(t) {
		r := deployrig.Run(t, bin, nil, cmd, "--help")
		_, opts, _ := strings.Cut(r.Stdout, "\nOPTIONS:\n")
		for _, m := range placeholder.FindAllStringSubmatch(opts, -1) {
			if m[2] != "value" {
				t.Errorf("%s %s shows the placeholder %q: a backquoted word in its usage", cmd, m[1], m[2])
			}
		}
	}
}

// docSections splits a Markdown file into its "## name" sections.
func docSections(text string) map[string]string {
	out := map[string]string{}
	parts := regexp.MustCompile(`(?m)^## `).Split(text, -1)
	for _, p := range parts[1:] {
		name, body, _ := strings.Cut(p, "\n")
		out[strings.TrimSpace(name)] = body
	}
	return out
}

var docFlag = regexp.MustCompile(`--[a-z][a-z0-9_-]*`)

// flagSet is the sorted distinct flags named in text.
func flagSet(text string) []string {
	set := map[string]bool{}
	for _, f := range docFlag.FindAllString(text, -1) {
		set[f] = true
	}
	out := make([]string, 0, len(set))
	for f := range set {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// TestHelpMatchesDocs: docs/commands.md is the command reference. Each
// command's section opens with a synopsis naming exactly the flags its
// --help shows; each flag is described in a table row; no flag named in
// the file is missing from the binary; each section's exit codes are the
// command's (exitcodes.go). README lists every command and the app's codes.
func TestHelpMatchesDocs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "commands.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	sections := docSections(doc)
	described := map[string]bool{}
	for _, row := range regexp.MustCompile("(?m)^\\| `--.*$").FindAllString(doc, -1) {
		first, _, _ := strings.Cut(row[2:], " | ")
		for _, f := range docFlag.FindAllString(first, -1) {
			described[f] = true
		}
	}
	exists := map[string]bool{"--help": true, "--version": true}
	for _, cmd := range visibleCommands(t) {
		sec, ok := sections[cmd]
		if !ok {
			t.Errorf("docs/commands.md has no \"## %s\" section", cmd)
			continue
		}
		var flags []string
		if cmd != "help" {
			flags = helpFlags(t, cmd)
		}
		sort.Strings(flags)
		for _, f := range flags {
			exists[f] = true
			if !described[f] {
				t.Errorf("%s %s: no table row of docs/commands.md describes it", cmd, f)
			}
		}
		_, synopsis, _ := strings.Cut(sec, "```\n")
		synopsis, _, _ = strings.Cut(synopsis, "```")
		if got := flagSet(synopsis); !slices.Equal(got, flags) {
			t.Errorf("docs/commands.md's %s synopsis lacks %v and names %v, which %s --help does not show", cmd, minus(flags, got), minus(got, flags), cmd)
		}
		_, table, _ := strings.Cut(sec, "Exit codes:\n")
		var codes []int
		for _, m := range regexp.MustCompile(`(?m)^\| (\d) \|`).FindAllStringSubmatch(table, -1) {
			n, _ := strconv.Atoi(m[1])
			codes = append(codes, n)
		}
		if !slices.Equal(codes, codesOf(cmd)) {
			t.Errorf("docs/commands.md's %s exit codes %v, exitcodes.go has %v", cmd, codes, codesOf(cmd))
		}
	}
	// Puppet's own flags, quoted where serfdeploy passes them on.
	for _, f := range []string{"--tags", "--skip_tags", "--disable", "--enable"} {
		exists[f] = true
	}
	for _, f := range flagSet(doc) {
		if !exists[f] {
			t.Errorf("docs/commands.md names %s, which no command has", f)
		}
	}

	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	rs := docSections(string(readme))
	for _, cmd := range visibleCommands(t) {
		if !regexp.MustCompile(`(?m)^serfdeploy ` + cmd + ` `).MatchString(rs["Commands"]) {
			t.Errorf("README's Commands lacks %s", cmd)
		}
	}
	var codes []int
	for _, m := range regexp.MustCompile(`(?m)^\| (\d) \|`).FindAllStringSubmatch(rs["Exit codes"], -1) {
		n, _ := strconv.Atoi(m[1])
		codes = append(codes, n)
	}
	if !slices.Equal(codes, codesOf("")) {
		t.Errorf("README's exit codes %v, exitcodes.go has %v", codes, codesOf(""))
	}
}

// minus is a's elements that are not in b.
func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

package handler

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// runSummary is the part of puppet's last_run_summary.yaml serfdeploy reads.
type runSummary struct {
	Version struct {
		Config any    `yaml:"config"` // an integer or a string, depending on the server's setting
		Puppet string `yaml:"puppet"`
	} `yaml:"version"`
	Resources struct {
		Changed         int `yaml:"changed"`
		Failed          int `yaml:"failed"`
		FailedToRestart int `yaml:"failed_to_restart"`
		Total           int `yaml:"total"`
	} `yaml:"resources"`
	Events struct {
		Noop int `yaml:"noop"` // a noop run: resources that would have changed
	} `yaml:"events"`
	Time struct {
		Total   float64 `yaml:"total"`
		LastRun int64   `yaml:"last_run"`
	} `yaml:"time"`
}

// readSummary reads the summary if puppet wrote it during this run: after
// since, and not the file that was there when the run's Puppet started
// (before, its mark; "" when unknown). Otherwise the run produced none (no
// catalog was applied, or Puppet was killed before its end).
func readSummary(path string, since time.Time, before string) (*runSummary, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if info.ModTime().Before(since.Add(-time.Second)) || before != "" && fileMark(info) == before {
		return nil, fmt.Errorf("%s was not written by this run", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s runSummary
	if err := yaml.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &s, nil
}

// logEntry is one line of puppet's JSON-lines log (--logdest FILE.jsonl).
type logEntry struct {
	Level   string `json:"level"`
	Message string `json:"message"`
	Source  string `json:"source"`
}

// resourceInSource finds the resource in a log source such as
// /Stage[main]/Mymod/Exec[/bin/false]/returns.
var resourceInSource = regexp.MustCompile(`([A-Z][A-Za-z0-9_:]*\[.*\])(?:/[a-z_]+)?$`)

const maxFailedResources = 20

// failedResources lists each resource with an error, from the JSON log.
func failedResources(entries []logEntry) []protocol.FailedResource {
	var out []protocol.FailedResource
	seen := map[string]bool{}
	for _, e := range entries {
		if e.Level != "err" || !strings.HasPrefix(e.Source, "/Stage[") {
			continue
		}
		m := resourceInSource.FindStringSubmatch(strings.TrimPrefix(e.Source, "/Stage[main]"))
		res := e.Source
		if m != nil {
			// The class path precedes the resource: keep the last Type[title].
			res = lastResource(m[1])
		}
		if seen[res] || len(out) >= maxFailedResources {
			continue
		}
		seen[res] = true
		out = append(out, protocol.FailedResource{Resource: res, Message: protocol.Truncate(e.Message, 1000)})
	}
	return out
}

// lastResource returns the last Type[title] of a path like Mymod/Exec[x].
func lastResource(s string) string {
	depth := 0
	for i := len(s) - 1; i >= 0; i-- {
		switch s[i] {
		case ']':
			depth++
		case '[':
			depth--
			if depth == 0 {
				j := i
				for j > 0 && s[j-1] != '/' {
					j--
				}
				return s[j:]
			}
		}
	}
	return s
}

// errorLines returns puppet's error messages: from the JSON log when there
// is one, else the "Error: " lines of its console output.
func errorLines(entries []logEntry, output string) []string {
	var out []string
	for _, e := range entries {
		if e.Level == "err" && !facterNoise(e.Message) {
			out = append(out, e.Message)
		}
	}
	if len(out) > 0 {
		return out
	}
	for _, line := range strings.Split(output, "\n") {
		if msg, ok := strings.CutPrefix(strings.TrimSpace(stripANSI(line)), "Error: "); ok && !facterNoise(msg) {
			out = append(out, msg)
		}
	}
	return out
}

// facterNoise is an error Facter logs when it cannot read another process's
// environment (containers, sandboxes); it never fails a run, so it must not
// stand for the run's error.
func facterNoise(msg string) bool {
	return strings.Contains(msg, "/proc/1/environ")
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

func stripANSI(s string) string { return ansi.ReplaceAllString(s, "") }

// Evidence in puppet's output that tells the meanings of exit code 1 apart.
var (
	disabledOutput    = regexp.MustCompile(`administratively disabled \(Reason: '(.*)'\)`)
	lockedOutput      = regexp.MustCompile(`(?i)already in progress|agent_catalog_run\.lock exists`)
	unreachableOutput = regexp.MustCompile(`(?i)Failed to open TCP connection|Connection refused|No route to host|getaddrinfo|Name or service not known|execution expired|Could not connect to|Connection reset|SSL_connect|certificate verify failed`)
	compileOutput     = regexp.MustCompile(`(?i)Could not retrieve catalog from remote server|Error 500 on SERVER|Could not parse for environment|Evaluation Error|Syntax error|Could not find class|Server Error:|Could not find a directory environment`)
)

// outcome is the final phase of a run, from the evidence on the node.
type outcome struct {
	phase, reason, message string
}

// classify decides what a run's exit code means. With --detailed-exitcodes,
// 0 and 2 are success, 4 and 6 mean resources failed, and 1 means the run
// did not happen or did not finish: disabled, locked by another run, no
// catalog (compile error or unreachable server), or another error. The
// evidence on the node, not the code alone, tells these apart.
func classify(exit int, summary *runSummary, entries []logEntry, output, statedir string) outcome {
	errs := errorLines(entries, output)
	firstErr := ""
	if len(errs) > 0 {
		firstErr = errs[0]
	}
	switch {
	case exit == 0 || exit == 2:
		if summary != nil && (summary.Resources.Failed > 0 || summary.Resources.FailedToRestart > 0) {
			return outcome{protocol.PhaseFailed, protocol.ReasonResourcesFailed, resourcesMessage(summary, firstErr)}
		}
		return outcome{phase: protocol.PhaseFinished}
	case exit == 4 || exit == 6:
		return outcome{protocol.PhaseFailed, protocol.ReasonResourcesFailed, resourcesMessage(summary, firstErr)}
	}
	text := stripANSI(output)
	if m := disabledOutput.FindStringSubmatch(text); m != nil {
		return outcome{protocol.PhaseDisabled, protocol.ReasonDisabled, "puppet agent is disabled: " + m[1]}
	}
	if msg, disabled := puppetDisabled(statedir); disabled && summary == nil {
		return outcome{protocol.PhaseDisabled, protocol.ReasonDisabled, msg}
	}
	if lockedOutput.MatchString(text) {
		return outcome{protocol.PhaseBusy, protocol.ReasonLocked, "another puppet run held the agent's lock; this run did not happen"}
	}
	// No catalog was applied. Which of the two? (An agent writes a summary
	// even then, with no resources, so the summary's presence does not tell.)
	all := strings.Join(errs, "\n")
	if all == "" {
		all = text
	}
	if compileOutput.MatchString(all) && !unreachableOutput.MatchString(all) {
		return outcome{protocol.PhaseFailed, protocol.ReasonCompileError, pickLine(errs, compileOutput, firstErr)}
	}
	if unreachableOutput.MatchString(all) {
		return outcome{protocol.PhaseFailed, protocol.ReasonServerUnreachable, "puppet server unreachable: " + pickLine(errs, unreachableOutput, firstErr)}
	}
	if summary != nil && summary.Resources.Failed > 0 {
		return outcome{protocol.PhaseFailed, protocol.ReasonResourcesFailed, resourcesMessage(summary, firstErr)}
	}
	if firstErr == "" {
		firstErr = fmt.Sprintf("puppet exited with %d", exit)
	}
	return outcome{protocol.PhaseFailed, protocol.ReasonPuppetError, firstErr}
}

func resourcesMessage(s *runSummary, firstErr string) string {
	msg := "resources failed"
	if s != nil {
		msg = fmt.Sprintf("%d of %d resources failed", s.Resources.Failed+s.Resources.FailedToRestart, s.Resources.Total)
	}
	if firstErr != "" {
		msg += ": " + firstErr
	}
	return msg
}

// pickLine returns the first line matching re, else fallback.
func pickLine(lines []string, re *regexp.Regexp, fallback string) string {
	for _, l := range lines {
		if re.MatchString(l) {
			return l
		}
	}
	return fallback
}

// configVersion renders the summary's config version, which puppet writes as
// a number or a string.
func (s *runSummary) configVersion() string {
	if s == nil || s.Version.Config == nil {
		return ""
	}
	return fmt.Sprint(s.Version.Config)
}

// summaryMark identifies the summary file as it is now (modification time
// and inode; "" when there is none), so that a summary that was already
// there when a run started is never taken for the run's own. The time
// alone does not tell: a run that starts within a second of the previous
// one's end (a queued run, or the next deploy) would read the previous
// run's summary if its Puppet was killed before writing one: the oracle's
// false green, seed 7 scenario 21.
func summaryMark(path string) string {
	info, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fileMark(info)
}

func fileMark(info os.FileInfo) string {
	mark := fmt.Sprint(info.ModTime().UnixNano())
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		mark += fmt.Sprintf(":%d", st.Ino)
	}
	return mark
}

package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/serfdeploy/serfdeploy/orchestrate"
)

// exitCode is one line of a command's exit-code table.
type exitCode struct {
	code    int
	meaning string
}

// exitCodes is the one source of every command's exit codes (the numbers
// are orchestrate's, the API CI jobs gate on): --help shows
// a command's own table, the app's --help the whole one (under ""), and a
// test requires docs/commands.md and README.md to list the same codes. CI
// jobs gate on these numbers. Hidden commands have none.
var exitCodes = map[string][]exitCode{
	"": {
		{orchestrate.ExitOK, "every target finished without failures (with or without changes)"},
		{orchestrate.ExitFailed, "a puppet run failed on at least one node, or a target was disabled or busy with another run and did not apply the release, or applied another deploy's code (stale)"},
		{orchestrate.ExitUsage, "usage or bad input (unknown flag, malformed --tag, oversize event, an unwritable report path, an --id used for another request, a git ref or module the master's repository does not have, more targets than --max-targets)"},
		{orchestrate.ExitNoTargets, "nothing matched: no alive node matched the filters (report, watch: no record of that deploy id)"},
		{orchestrate.ExitIncomplete, "incomplete: timed out, interrupted, a node was lost or never got the run, or a master reached more nodes than answered (and no run failed)"},
		{orchestrate.ExitInfra, "infrastructure: serf agent unreachable, gone or auth key refused, no master, code sync failed, logging service unreachable or refusing credentials, a node cannot tell whether it matches --fact/--class/--select"},
		{orchestrate.ExitPending, "--noop: every target finished without failures and at least one has pending changes (drift); 0 with --noop means no node would change"},
	},
	"deploy": {
		{orchestrate.ExitOK, "every target finished without failures (with or without changes)"},
		{orchestrate.ExitFailed, "a puppet run failed on at least one node, or a target was disabled or busy with another run and did not apply the release, or applied another deploy's code (stale)"},
		{orchestrate.ExitUsage, "usage or bad input (unknown flag, malformed --tag, oversize event, an unwritable report path, an --id used for another request, a git ref or module the master's repository does not have, more targets than --max-targets)"},
		{orchestrate.ExitNoTargets, "nothing matched: no alive node matched the filters"},
		{orchestrate.ExitIncomplete, "incomplete: timed out, interrupted, a node was lost or never got the run, or a master reached more nodes than answered (and no run failed)"},
		{orchestrate.ExitInfra, "infrastructure: serf agent unreachable, gone or auth key refused, no master, code sync failed, logging service unreachable or refusing credentials, a node cannot tell whether it matches --fact/--class/--select"},
		{orchestrate.ExitPending, "--noop: every target finished without failures and at least one has pending changes (drift); 0 with --noop means no node would change"},
	},
	"run": {
		{orchestrate.ExitOK, "every target finished without failures (with or without changes)"},
		{orchestrate.ExitFailed, "a puppet run failed on at least one node, or a target was disabled or busy with another run, or applied other code than --expect-version (stale)"},
		{orchestrate.ExitUsage, "usage or bad input (unknown flag, malformed --tag, bad Puppet tags or --expect-version, an unwritable report path, an --id used for another request, more targets than --max-targets)"},
		{orchestrate.ExitNoTargets, "nothing matched: no alive node matched the filters"},
		{orchestrate.ExitIncomplete, "incomplete: timed out, interrupted, a node was lost or never got the run (and no run failed)"},
		{orchestrate.ExitInfra, "infrastructure: serf agent unreachable, gone or auth key refused, logging service unreachable or refusing credentials, a node cannot tell whether it matches --fact/--class/--select"},
		{orchestrate.ExitPending, "--noop: every target finished without failures and at least one has pending changes (drift)"},
	},
	"watch": {
		{orchestrate.ExitOK, "every target of the deploy or run finished without failures"},
		{orchestrate.ExitFailed, "a puppet run failed on at least one node, or a target was disabled, busy or stale"},
		{orchestrate.ExitUsage, "usage or bad input (no deploy id or a malformed one, an unwritable report path)"},
		{orchestrate.ExitNoTargets, "no node or master has a record of that deploy id"},
		{orchestrate.ExitIncomplete, "incomplete: timed out, interrupted, a node was lost, fewer nodes have a record than the deploy listed, or a master never answered (and no run failed)"},
		{orchestrate.ExitInfra, "infrastructure: serf agent unreachable, gone or auth key refused, logging service unreachable or refusing credentials"},
		{orchestrate.ExitPending, "--noop: every target finished without failures and at least one has pending changes (drift)"},
	},
	"status": {
		{orchestrate.ExitOK, "every matching node answered (with --id: and none failed that deploy)"},
		{orchestrate.ExitFailed, "with --id: that deploy failed on a node"},
		{orchestrate.ExitUsage, "usage or bad input (unknown flag, malformed --tag, a malformed --id)"},
		{orchestrate.ExitNoTargets, "no alive node matched the filters, or with --id no matching node has a record of that id"},
		{orchestrate.ExitIncomplete, "a node did not answer, or with --id the deploy is still under way on one"},
		{orchestrate.ExitInfra, "infrastructure: serf agent unreachable, gone or auth key refused, or a node cannot tell whether it matches --fact/--class/--select"},
	},
	"summary": {
		{orchestrate.ExitOK, "every matching node answered (whatever its last run's result)"},
		{orchestrate.ExitUsage, "usage or bad input (unknown flag, malformed --tag)"},
		{orchestrate.ExitNoTargets, "no alive node matched the filters"},
		{orchestrate.ExitIncomplete, "a node did not answer (its figures are missing from the summary)"},
		{orchestrate.ExitInfra, "infrastructure: serf agent unreachable, gone or auth key refused, or a node cannot tell whether it matches --fact/--class/--select"},
	},
	"count": {
		{orchestrate.ExitOK, "every matching node answered"},
		{orchestrate.ExitUsage, "usage or bad input (unknown flag, malformed --tag)"},
		{orchestrate.ExitNoTargets, "no alive node matched the filters"},
		{orchestrate.ExitIncomplete, "a node did not answer"},
		{orchestrate.ExitInfra, "infrastructure: serf agent unreachable, gone or auth key refused, or a node cannot tell whether it matches --fact/--class/--select"},
	},
	"members": {
		{orchestrate.ExitOK, "the members were listed (none matching is still 0)"},
		{orchestrate.ExitUsage, "usage or bad input (unknown flag, malformed --tag, an unknown --status)"},
		{orchestrate.ExitInfra, "infrastructure: serf agent unreachable, gone or auth key refused, or a node cannot tell whether it matches --fact/--class/--select"},
	},
	"disable": {
		{orchestrate.ExitOK, "every matching node is disabled now (or was already)"},
		{orchestrate.ExitFailed, "a node could not disable Puppet (its answer says why)"},
		{orchestrate.ExitUsage, "usage or bad input (no --tag or --node, no --message or a malformed one)"},
		{orchestrate.ExitNoTargets, "no alive node matched the filters"},
		{orchestrate.ExitIncomplete, "a node did not answer"},
		{orchestrate.ExitInfra, "infrastructure: serf agent unreachable, gone or auth key refused, or a node cannot tell whether it matches --fact/--class/--select"},
	},
	"enable": {
		{orchestrate.ExitOK, "every matching node is enabled now (or was already)"},
		{orchestrate.ExitFailed, "a node could not enable Puppet (its answer says why)"},
		{orchestrate.ExitUsage, "usage or bad input (no --tag or --node)"},
		{orchestrate.ExitNoTargets, "no alive node matched the filters"},
		{orchestrate.ExitIncomplete, "a node did not answer"},
		{orchestrate.ExitInfra, "infrastructure: serf agent unreachable, gone or auth key refused, or a node cannot tell whether it matches --fact/--class/--select"},
	},
	"report": {
		{orchestrate.ExitOK, "every node of that deploy finished without failures"},
		{orchestrate.ExitFailed, "a puppet run of that deploy failed on at least one node, or a node was disabled, busy or stale"},
		{orchestrate.ExitUsage, "usage or bad input (no --log-url, no deploy id or a malformed one, an unwritable report path)"},
		{orchestrate.ExitNoTargets, "the logging service has no record of that deploy id since --since"},
		{orchestrate.ExitIncomplete, "a node has a started record and no finished one"},
		{orchestrate.ExitInfra, "infrastructure: logging service unreachable or refusing credentials"},
		{orchestrate.ExitPending, "a --noop deploy: no failures and at least one node has pending changes"},
	},
	"handle": {
		{orchestrate.ExitOK, "the event or query was handled, or is not serfdeploy's and was ignored"},
		{orchestrate.ExitUsage, "run by hand: SERF_EVENT is not set (it is serf's event handler), or a usage error"},
		{orchestrate.ExitInfra, "the node config cannot be read or is invalid, or the handler failed (handler.log says why)"},
	},
	"install": {
		{orchestrate.ExitOK, "done (or nothing changed)"},
		{orchestrate.ExitUsage, "bad input: nothing written"},
		{orchestrate.ExitInfra, "a file could not be read or written"},
	},
	"help": {
		{orchestrate.ExitOK, "help shown"},
		{orchestrate.ExitUsage, "no such command"},
	},
}

// exitCodeNotes follow a command's table: when an automatic retry is safe.
var exitCodeNotes = map[string]string{
	"":       retryNote,
	"deploy": retryNote,
	"run":    retryNote,
	"watch":  "Worth an automatic retry: 5 (watch sends nothing but status queries).\nNot worth one: 1, 2, 3.",
}

const retryNote = "Worth an automatic retry: 5, when the --result-file says \"fired\": false.\nNot worth one: 1, 2, 3."

// exitCodesText is a command's EXIT CODES section as --help shows it, or
// "" for a command with none.
func exitCodesText(command string) string {
	codes, ok := exitCodes[command]
	if !ok {
		return ""
	}
	var b strings.Builder
	b.WriteString("EXIT CODES:")
	for _, c := range codes {
		for i, line := range wrap(c.meaning, 70) {
			if i == 0 {
				fmt.Fprintf(&b, "\n   %d  %s", c.code, line)
			} else {
				b.WriteString("\n      " + line)
			}
		}
	}
	if note := exitCodeNotes[command]; note != "" {
		b.WriteString("\n   " + strings.ReplaceAll(note, "\n", "\n   "))
	}
	return b.String()
}

// exitCodeTables is every distinct table --help shows, longest first, for
// the man page.
func exitCodeTables() []string {
	seen := map[string]bool{}
	var out []string
	for cmd := range exitCodes {
		if t := exitCodesText(cmd); !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) || len(out[i]) == len(out[j]) && out[i] < out[j] })
	return out
}

// wrap breaks text into lines of at most width characters, at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}

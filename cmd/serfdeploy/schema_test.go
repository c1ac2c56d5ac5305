package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
	"github.com/serfdeploy/serfdeploy/testkit/loki"
)

// schemaPath is the one documented schema of every --format json output.
var schemaPath = filepath.Join("..", "..", "docs", "json-schema.json")

// compileSchema compiles docs/json-schema.json: the whole (any output) for
// def "", else one of its $defs (result, plan, status, members, lock,
// summary, count).
func compileSchema(t *testing.T, def string) *jsonschema.Schema {
	t.Helper()
	abs, err := filepath.Abs(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat() // started and finished must be real date-times
	loc := abs
	if def != "" {
		loc += "#/$defs/" + def
	}
	s, err := c.Compile(loc)
	if err != nil {
		t.Fatalf("%s: %v", loc, err)
	}
	return s
}

// validate checks one JSON document against the schema's def and against
// the whole schema (which must match exactly one output type).
func validate(t *testing.T, def, doc string) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
	if err != nil {
		return err
	}
	if err := compileSchema(t, def).Validate(inst); err != nil {
		return err
	}
	return compileSchema(t, "").Validate(inst)
}

// mustMatch validates a command's stdout, which must be one JSON document.
func mustMatch(t *testing.T, def string, r deployrig.Result, codes ...int) {
	t.Helper()
	ok := false
	for _, c := range codes {
		ok = ok || r.Code == c
	}
	if !ok {
		t.Fatalf("exit %d, want one of %v: %s", r.Code, codes, r)
	}
	if err := validate(t, def, r.Stdout); err != nil {
		t.Fatalf("%s output does not match docs/json-schema.json: %v\n%s", def, err, r.Stdout)
	}
}

// TestSchemaIsStrict: hand-made documents show the schema refuses what a
// consumer could not rely on. Each bad one differs from a good one by one
// field, so it is that field the schema refused.
func TestSchemaIsStrict(t *testing.T) {
	nodes := `[{"node": "a1", "state": "failed", "exit_code": 4, "changed": 0, "failed": 1, "total": 9, "duration_sec": 1.5,
		"failed_resources": [{"resource": "Exec[x]", "message": "returned 1"}]}]`
	figures := `{"min": 1, "avg": 1.5, "max": 2, "nodes": 1}`
	good := map[string]string{
		"result": `{"schema_version": 2, "id": "d-1", "kind": "deploy", "filter": "segment=qa", "nodes": ` + nodes + `,
			"started": "2026-01-02T03:04:05Z", "finished": "2026-01-02T03:05:05Z", "status_source": "the logging service",
			"exit_code": 1, "outcome": "1 failed (exit 1)", "fired": true, "queries": 7}`,
		"plan":    `{"schema_version": 1, "id": "d-1", "kind": "run", "filter": "segment=qa", "targets": ["a1"], "send": "query puppetrun", "payload": "{}"}`,
		"status":  `{"schema_version": 1, "filter": "segment=qa", "nodes": [{"node": "a1", "serf_status": "alive", "answered": true, "status": {"v": 1, "node": "a1", "role": "agent", "phase": "unknown"}}], "exit_code": 0}`,
		"members": `{"schema_version": 1, "members": [{"name": "a1", "addr": "127.0.0.1:7946", "status": "leaving", "tags": {"segment": "qa"}}]}`,
		"lock":    `{"schema_version": 1, "action": "disable", "filter": "a1", "nodes": [{"node": "a1", "result": "no answer", "message": "no answer within 5s"}], "exit_code": 4}`,
		"summary": `{"schema_version": 1, "filter": "(no filter)", "total": 1, "answered": 1, "with_figures": 1, "last_run_age_s": ` + figures + `,
			"config_retrieval_s": ` + figures + `, "run_time_s": ` + figures + `, "resources": {"total": ` + figures + `, "changed": ` + figures + `,
			"failed": ` + figures + `, "out_of_sync": ` + figures + `}, "by_serfdeploy": 0, "by_other": 1, "oldest": [{"node": "a1", "at": 1800000000, "detail": "outside serfdeploy"}],
			"failed": [], "disabled": [], "running": [], "no_answer": [], "unreadable": [], "exit_code": 0}`,
		"count": `{"schema_version": 1, "filter": "(no filter)", "total": 1, "running": 0, "idle": 1, "disabled": 0, "no_answer": 0,
			"daemon": {"running": 0, "stopped": 1, "unknown": 0}, "nodes": [{"node": "a1", "state": "idle", "daemon": "stopped",
			"puppet": {"at": 1800000000, "total": 9, "cfg": 0.1, "dur": 2.5, "by": "other", "daemon": "stopped"}}], "exit_code": 0}`,
	}
	for def, doc := range good {
		if err := validate(t, def, doc); err != nil {
			t.Fatalf("a good %s document is refused: %v", def, err)
		}
	}
	bad := []struct{ def, why, from, to string }{
		{"result", "nodes null", `"nodes": ` + nodes, `"nodes": null`},
		{"result", "exit_code a string", `"exit_code": 1,`, `"exit_code": "1",`},
		{"result", "fired missing", `"fired": true, `, ``},
		{"result", "an undocumented field", `"queries": 7`, `"queries": 7, "retries": 1`},
		{"result", "an unknown node state", `"state": "failed"`, `"state": "broken"`},
		{"result", "Puppet's exit code a string", `"exit_code": 4`, `"exit_code": "4"`},
		{"result", "the wrong schema version", `"schema_version": 2`, `"schema_version": 1`},
		{"result", "started not a date-time", `"2026-01-02T03:04:05Z"`, `"yesterday"`},
		{"plan", "targets null", `"targets": ["a1"]`, `"targets": null`},
		{"status", "answered missing", `"answered": true, `, ``},
		{"members", "no schema_version", `"schema_version": 1, `, ``},
		{"members", "a bare array", `{"schema_version": 1, "members": [`, `[`},
		{"summary", "oldest null", `"oldest": [{"node": "a1", "at": 1800000000, "detail": "outside serfdeploy"}]`, `"oldest": null`},
		{"summary", "a figure without max", `"max": 2, `, ``},
		{"count", "an unknown state", `"state": "idle"`, `"state": "asleep"`},
		{"count", "an unknown key in a node's puppet state", `"by": "other"`, `"by": "other", "who": "cron"`},
		{"lock", "nodes null", `"nodes": [{"node": "a1", "result": "no answer", "message": "no answer within 5s"}]`, `"nodes": null`},
	}
	for _, b := range bad {
		doc := strings.Replace(good[b.def], b.from, b.to, 1)
		if doc == good[b.def] {
			t.Fatalf("%s: %q is not in the good document", b.why, b.from)
		}
		if b.why == "a bare array" {
			doc = strings.TrimSuffix(doc, "}")
		}
		if err := validate(t, b.def, doc); err == nil {
			t.Errorf("%s %s: accepted\n%s", b.def, b.why, doc)
		}
	}
}

// TestJSONOutputsMatchSchema runs every command that writes JSON against a
// real fleet and validates what it printed against docs/json-schema.json.
func TestJSONOutputsMatchSchema(t *testing.T) {
	// With Loki, nodes' final statuses come from it (source "log") and
	// report has something to read; without, report is not checked here.
	var logEnv []string
	opts := deployrig.Options{}
	if _, err := loki.FindBinary(); err == nil {
		lk := loki.Start(t)
		opts.LogURL = lk.URL
		logEnv = []string{"SERFDEPLOY_LOG_URL=" + lk.URL}
	} else {
		t.Logf("report's JSON is not checked: %v", err)
	}
	f := qaRig(t, opts)
	dir := t.TempDir()

	// An early exit: bad input, nothing sent, "nodes": [].
	r := f.CLI(nil, "deploy", "--module", "motd;x", "--ref", "v1", "--format", "json")
	mustMatch(t, "result", r, 2)
	if !strings.Contains(r.Stdout, `"nodes": []`) {
		t.Fatalf("an early exit's nodes:\n%s", r.Stdout)
	}

	// --dry-run of a deploy and of a run.
	mustMatch(t, "plan", f.CLI(logEnv, deployArgs("--ref", "v1", "--tag", "segment=qa", "--dry-run", "--format", "json")...), 0)
	mustMatch(t, "plan", f.CLI(logEnv, "run", "--tag", "segment=prod", "--dry-run", "--format", "json"), 0)

	// A deploy that succeeds, on stdout and in --result-file.
	resultFile := filepath.Join(dir, "result.json")
	mustMatch(t, "result", f.CLI(logEnv, deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", "schema-ok", "--format", "json", "--result-file", resultFile)...), 0)
	b, err := os.ReadFile(resultFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(t, "result", string(b)); err != nil {
		t.Fatalf("--result-file: %v\n%s", err, b)
	}

	// A deploy that fails on one node: failed resources, Puppet's codes.
	f.Repo.CommitModule("v2-broken", f.Files, failOn("agent-02"))
	mustMatch(t, "result", f.CLI(logEnv, deployArgs("--ref", "v2-broken", "--tag", "segment=qa", "--id", "schema-fail", "--format", "json")...), 1)

	// watch of a deploy that has ended, a run, status with and without --id.
	mustMatch(t, "result", f.CLI(logEnv, append([]string{"watch", "schema-ok", "--format", "json"}, fast...)...), 0)
	mustMatch(t, "result", f.CLI(logEnv, append([]string{"run", "--tag", "segment=prod", "--format", "json"}, fast...)...), 0)
	mustMatch(t, "status", f.CLI(nil, "status", "--format", "json"), 0)
	mustMatch(t, "status", f.CLI(nil, "status", "--id", "schema-fail", "--tag", "segment=qa", "--format", "json"), 1)
	mustMatch(t, "summary", f.CLI(nil, "summary", "--format", "json"), 0)
	mustMatch(t, "count", f.CLI(nil, "count", "--tag", "segment=qa", "--format", "json"), 0)
	mustMatch(t, "members", f.CLI(nil, "members", "--format", "json"), 0)
	mustMatch(t, "members", f.CLI(nil, "members", "--tag", "segment=nothing", "--format", "json"), 0)

	// disable, disable again (already), enable.
	mustMatch(t, "lock", f.CLI(nil, "disable", "--node", "agent-03", "--message", "schema test", "--format", "json"), 0)
	mustMatch(t, "lock", f.CLI(nil, "disable", "--node", "agent-03", "--message", "schema test", "--format", "json"), 0)
	mustMatch(t, "lock", f.CLI(nil, "enable", "--node", "agent-03", "--format", "json"), 0)

	if logEnv != nil {
		mustMatch(t, "result", deployrig.Run(t, bin, append(logEnv, "SERF_RPC_ADDR="+deadAddr(t)), "report", "schema-fail", "--format", "json"), 1)
		mustMatch(t, "result", deployrig.Run(t, bin, logEnv, "report", "schema-ok", "--format", "json"), 0)
	}
}

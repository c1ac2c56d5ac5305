package handler

// go test -run '^$' -fuzz '^FuzzHandlePuppetRun$' -fuzztime 60s ./handler/
// (and FuzzHandleStatus, FuzzHandleDeploy); scripts/fuzz.sh runs every
// target of the repository in turn (docs/fuzzing.md).

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// fuzzNode is a node whose worker never starts: every payload is decoded,
// checked and recorded exactly as in production, and nothing is run.
func fuzzNode(tb testing.TB, role string) *Node {
	tb.Helper()
	dir := tb.TempDir()
	cfgPath := filepath.Join(dir, "node.yaml")
	cfg := "role: " + role + "\nstate_dir: " + filepath.Join(dir, "state") +
		"\nenvironment: production\npuppet:\n  json_log: false\n  state_dir: " + filepath.Join(dir, "puppet-state") +
		"\n  summary_file: " + filepath.Join(dir, "summary.yaml") + "\n  command:\n    - /bin/false\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		tb.Fatal(err)
	}
	c, err := LoadConfig(cfgPath)
	if err != nil {
		tb.Fatal(err)
	}
	n, err := NewNode(c, cfgPath, func(k string) string {
		return map[string]string{"SERF_SELF_NAME": role + "-01"}[k]
	})
	if err != nil {
		tb.Fatal(err)
	}
	n.worker = func(kind, id string) (int, error) { return 0, errors.New("fuzz: no worker") }
	return n
}

func runIDs(t *testing.T, n *Node) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(n.st.dir, "runs"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return len(entries)
}

var payloadSeeds = []string{
	``, `{}`, `null`, `not json`, `{"id":"x"} {"id":"y"}`, `{"id":1}`, `{"id":"x","evil":1}`,
	`{"id":"../../x"}`, `{"id":"a/b"}`, `{"id":".."}`, `{"id":"-x"}`, "{\"id\":\"x\x00\"}", "{\"id\":\"\xff\"}",
	`{"id":"` + strings.Repeat("x", 129) + `"}`, `{"id":"` + strings.Repeat("x", 2000) + `"}`,
	strings.Repeat("[", 5000) + strings.Repeat("]", 5000),
}

// FuzzHandlePuppetRun: whatever arrives as a puppetrun query, the handler
// answers (never an error, never silence) with a strict, versioned answer
// from this node that fits serf's response limit; a payload that is not a
// valid request is rejected and leaves nothing in the state directory; a
// valid one is recorded under its id, and a repeat is answered "already".
// Each input gets a node of its own: with one node for all, an input that
// reuses an earlier input's id for another request is rightly answered
// from the first record, which the properties below would call wrong.
func FuzzHandlePuppetRun(f *testing.F) {
	for _, s := range append(payloadSeeds,
		`{"id":"fast-1"}`, `{"id":"d1","env":"qa_2","module":"motd","ref":"v1.2.0","build":{"tag":"t","url":"u","job":"j"}}`,
		`{"id":"d2","env":"Prod"}`, `{"id":"d3","ref":"--upload-pack=sh"}`, `{"id":"d4","skip_masters":true}`) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		n := fuzzNode(t, RoleAgent)
		before := runIDs(t, n)
		a := askNode(t, n, payload)
		var req protocol.RunRequest
		valid := len(payload) <= protocol.MaxQueryResponse && protocol.DecodeStrict(payload, &req) == nil && req.Validate() == nil
		if !valid {
			if a.Result != protocol.RunRejected || a.Message == "" {
				t.Fatalf("invalid request %q answered %+v", payload, a)
			}
			if after := runIDs(t, n); after != before {
				t.Fatalf("invalid request %q created a record", payload)
			}
			return
		}
		rec, err := n.st.load(req.ID, KindRun)
		if err != nil || rec.ID != req.ID || filepath.Dir(n.st.runDir(req.ID)) != filepath.Join(n.st.dir, "runs") {
			t.Fatalf("request %q: record %+v, %v", payload, rec, err)
		}
		// A deploy's run without an environment is the node's configured
		// one; an ad-hoc run's stays empty (Puppet's own, newRecord).
		want := req.Request()
		if want.Environment == "" && want.Module != "" {
			want.Environment = "production"
		}
		if rec.request() != want {
			t.Fatalf("request %q recorded as %+v, want %+v", payload, rec.request(), want)
		}
		if again := askNode(t, n, payload); again.Result != protocol.RunAlready {
			t.Fatalf("repeat of %q answered %+v", payload, again)
		}
	})
}

func askNode(t *testing.T, n *Node, payload []byte) protocol.RunAnswer {
	t.Helper()
	var out bytes.Buffer
	if err := n.handlePuppetRun(bytes.NewReader(payload), &out); err != nil {
		t.Fatalf("handlePuppetRun(%q): %v", payload, err)
	}
	var a protocol.RunAnswer
	if err := protocol.DecodeStrict(out.Bytes(), &a); err != nil || a.V != protocol.Version || a.Node != n.name || a.Result == "" {
		t.Fatalf("handlePuppetRun(%q) answered %q: %v", payload, out.Bytes(), err)
	}
	if !protocol.ResponseFits(n.name, out.Bytes()) {
		t.Fatalf("handlePuppetRun(%q) answered %d bytes: serf drops it", payload, protocol.ResponseSize(n.name, out.Bytes()))
	}
	return a
}

// FuzzHandleStatus: whatever arrives as a puppet-status query, the node
// answers with a strict, versioned status of itself that fits serf's limit,
// or says nothing only when asked for an id it knows nothing of with
// "known"; a bad request is answered as such and names no id.
func FuzzHandleStatus(f *testing.F) {
	for _, s := range append(payloadSeeds, `{"id":"d1"}`, `{"id":"d1","known":true}`, `{"id":"nope","known":true}`,
		`{"id":"nope"}`, `{"known":true}`, `{"id":""}`,
		`{"select":"class:ntp"}`, `{"select":"fact:os.family=Debian and not tag:role=x"}`, `{"select":"((("}`, `{"id":"d1","select":"class:a"}`) {
		f.Add([]byte(s))
	}
	n := fuzzNode(f, RoleAgent)
	exit := 2
	now := time.Now()
	for i, msg := range []string{strings.Repeat("Error: <boom> \x1b[31mé\x1b[0m\n", 200), "ok"} {
		id := []string{"d0", "d1"}[i]
		rec := &Record{ID: id, Kind: KindRun, Phase: protocol.PhaseFailed, Module: "motd", Ref: "v1", Environment: "production",
			Outcome: protocol.Outcome{Reason: protocol.ReasonResourcesFailed, Message: msg, ExitCode: &exit, ConfigVersion: "motd=0123abcdef"},
			Created: now.Add(time.Duration(i) * time.Second),
			Started: now.Add(time.Duration(i) * time.Second), Finished: now.Add(time.Minute)}
		if err := n.st.create(rec); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var out bytes.Buffer
		if err := n.handleStatus(bytes.NewReader(payload), &out); err != nil {
			t.Fatalf("handleStatus(%q): %v", payload, err)
		}
		var req protocol.StatusRequest
		valid := len(payload) <= protocol.MaxQueryResponse &&
			(len(payload) == 0 || protocol.DecodeStrict(payload, &req) == nil) &&
			(req.ID == "" || protocol.ValidID(req.ID) == nil)
		_, known := n.st.load(req.ID, KindRun)
		if out.Len() == 0 {
			if !valid || !req.Known || req.ID == "" || known == nil {
				t.Fatalf("handleStatus(%q) said nothing", payload)
			}
			return
		}
		var st protocol.Status
		if err := protocol.DecodeStrict(out.Bytes(), &st); err != nil || st.V != protocol.Version || st.Node != n.name || st.Role != RoleAgent {
			t.Fatalf("handleStatus(%q) answered %q: %v", payload, out.Bytes(), err)
		}
		if !protocol.ResponseFits(n.name, out.Bytes()) {
			t.Fatalf("handleStatus(%q) answered %d bytes: serf drops it", payload, protocol.ResponseSize(n.name, out.Bytes()))
		}
		switch {
		case !valid:
			if st.Phase != protocol.PhaseUnknown || st.ID != "" || !strings.HasPrefix(st.Message, "bad request: ") {
				t.Fatalf("bad request %q answered %+v", payload, st)
			}
		case req.Select != "":
			// select.go: a selection is answered yes, no, reading facts
			// or why not (this node has no facts worker and no classes).
			switch st.Phase {
			case protocol.SelectMatch, protocol.SelectNoMatch, protocol.SelectPending, protocol.SelectError:
			default:
				t.Fatalf("selection %q answered %+v", payload, st)
			}
			if st.ID != "" || st.Last != nil {
				t.Fatalf("selection %q answered %+v", payload, st)
			}
		case req.ID == "":
			if (st.Phase != "idle" && st.Phase != protocol.PhaseRunning) || st.Last == nil || st.Last.ID != "d1" {
				t.Fatalf("request %q answered %+v", payload, st)
			}
		case known == nil:
			if st.ID != req.ID || st.Phase != protocol.PhaseFailed || st.Exit == nil || *st.Exit != 2 {
				t.Fatalf("request %q answered %+v", payload, st)
			}
		default:
			if st.ID != req.ID || st.Phase != protocol.PhaseUnknown {
				t.Fatalf("request %q answered %+v", payload, st)
			}
		}
	})
}

// FuzzHandleDeploy: whatever arrives as a deploy event, a master never
// fails on it; an event that is not a valid deploy leaves nothing in the
// state directory; a valid one is recorded once, as it was sent (with the
// node's default environment filled in).
func FuzzHandleDeploy(f *testing.F) {
	for _, s := range append(payloadSeeds,
		`{"id":"x","module":"motd","ref":"v1"}`,
		`{"id":"jenkins-release-42","module":"motd","ref":"release/2026-11","env":"qa_2","tags":{"segment":"qa|prod"},"nodes":["agent-01"],"skip_masters":true,"build":{"tag":"t","url":"u","job":"j"}}`,
		`{"id":"x2","module":"m","ref":"r","tags":{"segment":"(qa"}}`,
		`{"id":"-x","module":"motd;id","ref":"--upload-pack"}`,
		`{"id":"x3","module":"motd","ref":"v1..v2"}`) {
		f.Add([]byte(s))
	}
	n := fuzzNode(f, RoleMaster)
	f.Fuzz(func(t *testing.T, payload []byte) {
		before := runIDs(t, n)
		if err := n.handleDeploy(bytes.NewReader(payload)); err != nil {
			t.Fatalf("handleDeploy(%q): %v", payload, err)
		}
		var d protocol.Deploy
		valid := len(payload) <= protocol.MaxEventPayload && protocol.DecodeStrict(payload, &d) == nil && d.Validate() == nil
		if !valid {
			if after := runIDs(t, n); after != before {
				t.Fatalf("invalid deploy event %q created a record", payload)
			}
			return
		}
		if d.Environment == "" {
			d.Environment = "production"
		}
		rec, err := n.st.load(d.ID, KindSync)
		if err != nil || rec.Deploy == nil || rec.ID != d.ID {
			t.Fatalf("deploy event %q: record %+v, %v", payload, rec, err)
		}
		if runIDs(t, n) == before {
			// A known id keeps its first record, whatever this event asks:
			// an id is handled once, and the CLI refuses to reuse one for
			// another request (its answers carry the record's Request).
			return
		}
		if rec.Module != d.Module || rec.Ref != d.Ref || rec.Environment != d.Environment {
			t.Fatalf("deploy event %q recorded as %+v", payload, rec)
		}
		got := *rec.Deploy
		if len(got.Tags) == 0 && len(d.Tags) == 0 {
			got.Tags, d.Tags = nil, nil
		}
		if len(got.Nodes) == 0 && len(d.Nodes) == 0 {
			got.Nodes, d.Nodes = nil, nil
		}
		if !reflect.DeepEqual(got, d) {
			t.Fatalf("deploy event %q recorded as %+v", payload, got)
		}
	})
}

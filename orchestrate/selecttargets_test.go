package orchestrate

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// puppetNode is what a fake node knows: its facts and classes.
type puppetNode struct {
	facts   map[string]string
	classes map[string]bool
}

func (p puppetNode) Tag(string) (string, bool) { return "", false } // the CLI decides tags
func (p puppetNode) Fact(name string) (string, bool, bool) {
	v, ok := p.facts[name]
	return v, ok, true
}
func (p puppetNode) Class(name string) (bool, bool) { return p.classes[name], true }

// selectCluster is cluster's nodes with facts and classes, answering
// selections as a node does; answer overrides what a node says.
func selectCluster(answer func(node string) (protocol.Status, bool)) *fakeRPC {
	f := cluster(finishedOK)
	nodes := map[string]puppetNode{
		"m1":    {facts: map[string]string{"os.family": "Debian"}, classes: map[string]bool{"puppetserver": true}},
		"qa1":   {facts: map[string]string{"os.family": "Debian"}, classes: map[string]bool{"profile::web": true}},
		"qa2":   {facts: map[string]string{"os.family": "RedHat"}, classes: map[string]bool{"profile::web": true}},
		"prod1": {facts: map[string]string{"os.family": "Debian"}, classes: map[string]bool{"profile::db": true}},
	}
	inner := f.answer
	f.answer = func(node, query string, payload []byte) []byte {
		var req protocol.StatusRequest
		if query != protocol.QueryPuppetStatus || json.Unmarshal(payload, &req) != nil || req.Select == "" {
			return inner(node, query, payload)
		}
		if answer != nil {
			if st, ok := answer(node); ok {
				if st.Phase == "" {
					return nil // silent
				}
				st.Node = node
				return statusJSON(st)
			}
		}
		sel, err := protocol.ParseSelector(req.Select)
		if err != nil {
			panic(err)
		}
		phase := protocol.SelectNoMatch
		if t, _ := sel.Reduce(nodes[node]); t == protocol.SelectYes {
			phase = protocol.SelectMatch
		}
		return statusJSON(protocol.Status{Node: node, Role: "agent", Phase: phase})
	}
	return f
}

func selectNames(t *testing.T, f *fakeRPC, flt serfrpc.Filter, sel string) (*Selection, error) {
	t.Helper()
	s, err := ParseSelection(sel, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return SelectTargets(context.Background(), f, flt, s, time.Second)
}

func matchedNames(s *Selection) string {
	return strings.Join(names(s.Matched), ",")
}

func TestSelectTargetsAsksWhatTheTagsLeave(t *testing.T) {
	f := selectCluster(nil)
	s, err := selectNames(t, f, serfrpc.Filter{}, "tag:segment=qa and fact:os.family=Debian")
	if err != nil {
		t.Fatal(err)
	}
	if matchedNames(s) != "qa1" || s.Asked != 2 || s.Queries != 1 || len(f.queries) != 1 {
		t.Fatalf("matched %s, %d asked, %d queries (%d)", matchedNames(s), s.Asked, s.Queries, len(f.queries))
	}
	// Only the qa nodes were asked, and only what their tags left.
	q := f.queries[0]
	var req protocol.StatusRequest
	if err := protocol.DecodeStrict(q.Payload, &req); err != nil || req.Select != "fact:os.family=Debian" || req.ID != "" {
		t.Fatalf("payload %s: %v", q.Payload, err)
	}
	if strings.Join(q.Filter.Nodes, ",") != "qa1,qa2" || len(q.Expect) != 2 {
		t.Fatalf("asked %+v", q)
	}

	// Tags alone: nobody is asked.
	f = selectCluster(nil)
	s, err = selectNames(t, f, serfrpc.Filter{}, "tag:segment=qa or tag:role=puppetmaster")
	if err != nil || matchedNames(s) != "m1,qa1,qa2" || len(f.queries) != 0 {
		t.Fatalf("%v %v, %d queries", s, err, len(f.queries))
	}

	// With --tag: only its nodes are candidates; masters match like any node.
	f = selectCluster(nil)
	s, err = selectNames(t, f, serfrpc.Filter{Tags: map[string]string{"segment": "prod|qa"}}, "fact:os.family=Debian")
	if err != nil || matchedNames(s) != "prod1,qa1" {
		t.Fatalf("%v %v", s, err)
	}
	s, err = selectNames(t, selectCluster(nil), serfrpc.Filter{}, "fact:os.family=Debian and not class:profile::db")
	if err != nil || matchedNames(s) != "m1,qa1" {
		t.Fatalf("%v %v", s, err)
	}

	_, err = selectNames(t, selectCluster(nil), serfrpc.Filter{}, "class:apache")
	if exitCode(t, err) != ExitNoTargets || !strings.Contains(err.Error(), "class:apache") {
		t.Fatalf("no match: %v", err)
	}
}

func TestSelectTargetsWaitsForFactsBeingRead(t *testing.T) {
	asked := 0
	f := selectCluster(func(node string) (protocol.Status, bool) {
		if node != "qa1" {
			return protocol.Status{}, false
		}
		if asked++; asked < 2 {
			return protocol.Status{Phase: protocol.SelectPending}, true
		}
		return protocol.Status{Phase: protocol.SelectMatch}, true
	})
	s, err := selectNames(t, f, serfrpc.Filter{}, "fact:os.family=Debian")
	if err != nil || matchedNames(s) != "m1,prod1,qa1" || s.Queries != 2 {
		t.Fatalf("%+v %v", s, err)
	}
	if last := f.queries[1]; strings.Join(last.Filter.Nodes, ",") != "qa1" {
		t.Fatalf("asked again: %v", last.Filter.Nodes)
	}
}

// A node that cannot say is named with its reason, and nothing is guessed.
func TestSelectTargetsRefusesToGuess(t *testing.T) {
	f := selectCluster(func(node string) (protocol.Status, bool) {
		switch node {
		case "qa1":
			return protocol.Status{Phase: protocol.SelectError, Message: "reading its facts failed 3s ago: `puppet facts show` failed: exit status 1"}, true
		case "qa2":
			return protocol.Status{}, true // silent
		case "prod1":
			// serfdeploy before selections
			return protocol.Status{Phase: protocol.PhaseUnknown, Message: `bad request: not a valid message: json: unknown field "select"`}, true
		}
		return protocol.Status{}, false
	})
	_, err := selectNames(t, f, serfrpc.Filter{}, "fact:os.family=Debian")
	if exitCode(t, err) != ExitInfra {
		t.Fatalf("%v", err)
	}
	msg := err.Error()
	for _, want := range []string{"3 node(s) cannot say", "prod1 (cannot evaluate a selection (serfdeploy too old?)", "qa1 (reading its facts failed", "qa2 (no answer within 1s, asked 2 times)", "--tag or --node"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not say %q", msg, want)
		}
	}
	if strings.ContainsAny(msg, "\n\r") {
		t.Fatalf("not one line: %q", msg)
	}
	// The silent node was asked twice, the others once.
	if n := len(f.queries); n != 2 || strings.Join(f.queries[1].Filter.Nodes, ",") != "qa2" {
		t.Fatalf("%d queries, the second to %v", n, f.queries[len(f.queries)-1].Filter.Nodes)
	}
	// A node that cannot read its facts is no problem where the rest
	// decides (Kleene's and: the tag says no).
	if _, err := selectNames(t, f, serfrpc.Filter{}, "tag:segment=prod and fact:os.family=Debian"); exitCode(t, err) != ExitInfra || !strings.Contains(err.Error(), "1 node(s)") {
		t.Fatalf("%v", err)
	}
}

func TestParseSelectionRefusesWhatDoesNotFit(t *testing.T) {
	long := strings.TrimSuffix(strings.Repeat("class:profile::web_frontend or ", 28), " or ")
	if _, err := ParseSelection(long, time.Second); err == nil || exitCode(t, err) != ExitUsage || !strings.Contains(err.Error(), "does not fit one serf query") {
		t.Fatalf("%d bytes: %v", len(long), err)
	}
	if _, err := ParseSelection("class:a and", time.Second); exitCode(t, err) != ExitUsage {
		t.Fatalf("%v", err)
	}
}

func TestResolveSelectNarrowsARunToTheNames(t *testing.T) {
	f := selectCluster(nil)
	opts := fastOptions("r1")
	opts.Module, opts.Ref = "", ""
	opts.Select = "fact:os.family=Debian and not class:puppetserver"
	if err := Check(opts, false); err != nil {
		t.Fatal(err)
	}
	// Not resolved: refused, nothing sent.
	if _, err := Run(context.Background(), f, opts); err == nil || !strings.Contains(err.Error(), "not resolved") || len(f.queries) != 0 {
		t.Fatalf("an unresolved selection ran: %v", err)
	}
	note, err := ResolveSelect(context.Background(), f, &opts, false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(opts.Filter.Nodes, ",") != "prod1,qa1" || len(opts.Filter.Tags) != 0 || !strings.Contains(note, "2 node(s) match (4 asked, 1 query") {
		t.Fatalf("filter %+v, note %q", opts.Filter, note)
	}
	res, err := Run(context.Background(), f, opts)
	if err != nil || res.ExitCode != ExitOK {
		t.Fatalf("%+v %v", res, err)
	}
	if got := nodeStates(res); len(got) != 2 || got["qa1"] != StateFinished || got["prod1"] != StateFinished {
		t.Fatalf("nodes %v", got)
	}
	// Every puppetrun went to those names.
	for _, q := range f.queries {
		if q.Name == protocol.QueryPuppetRun && (len(q.Filter.Tags) > 0 || strings.Join(q.Filter.Nodes, ",") != "prod1,qa1" && strings.Join(q.Filter.Nodes, ",") != "qa1,prod1") {
			t.Fatalf("puppetrun to %+v", q.Filter)
		}
	}
}

func TestResolveSelectDeploysByName(t *testing.T) {
	f := selectCluster(nil)
	opts := fastOptions("d1")
	opts.Select = "class:profile::web"
	if _, err := ResolveSelect(context.Background(), f, &opts, true); err != nil {
		t.Fatal(err)
	}
	res, err := Deploy(context.Background(), f, opts)
	if err != nil || res.ExitCode != ExitOK {
		t.Fatalf("%+v %v", res, err)
	}
	var d protocol.Deploy
	if err := protocol.DecodeStrict(f.events[0].payload, &d); err != nil {
		t.Fatal(err)
	}
	if strings.Join(d.Nodes, ",") != "qa1,qa2" || len(d.Tags) != 0 || d.SkipMasters || d.SyncOnly {
		t.Fatalf("event %+v", d)
	}
}

// Names that do not fit in the 512-byte event: the masters only sync, and
// the CLI sends puppetrun to the names itself.
func TestResolveSelectDeploysManyNamesAsOneBatch(t *testing.T) {
	f := selectCluster(nil)
	for i := range 40 {
		f.add(fmt.Sprintf("web-frontend-%03d.example.com", i), serfrpc.StatusAlive, map[string]string{"segment": "web"})
	}
	opts := fastOptions("d2")
	opts.Select = "tag:segment=web"
	note, err := ResolveSelect(context.Background(), f, &opts, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.Filter.Nodes) != 40 || opts.Batch != "100%" || !strings.Contains(note, "one batch") {
		t.Fatalf("%d names, batch %q, note %q", len(opts.Filter.Nodes), opts.Batch, note)
	}
	if _, _, _, err := prepareDeploy(context.Background(), f, &opts); err != nil {
		t.Fatalf("the deploy event: %v", err)
	}
	if d := describe(opts.Filter); !strings.HasSuffix(d, " and 35 more nodes by name") || strings.Count(d, "--node") != 5 {
		t.Fatalf("described as %q", d)
	}
	// A few names still go in the event, as before.
	opts = fastOptions("d3")
	opts.Select = "tag:segment=web and fact:os.family=Debian" // no web node has facts here: none match
	if _, err := ResolveSelect(context.Background(), f, &opts, true); exitCode(t, err) != ExitNoTargets {
		t.Fatalf("%v", err)
	}
}

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

// factsRig: real agents whose Puppet knows different things. Each node's
// facts are what `puppet facts show` prints as that node (Facter's, plus
// the external facts deployrig writes in its $vardir/facts.d); its classes
// are its Puppet classes.txt. broken-01's facts command fails.
func factsRig(t *testing.T) *deployrig.Rig {
	if testing.Short() {
		t.Skip("real agents and Puppet")
	}
	return deployrig.Start(t, deployrig.Options{Bin: bin, Nodes: []deployrig.Node{
		{Name: "master-01", Master: true, Facts: map[string]string{"role": "puppetserver", "dc": "ams"}, Classes: []string{"settings", "puppetserver"}},
		{Name: "web-01", Tags: map[string]string{"segment": "qa"}, Facts: map[string]string{"role": "web", "dc": "ams"}, Classes: []string{"settings", "profile::web", "ntp"}},
		{Name: "web-02", Tags: map[string]string{"segment": "qa"}, Facts: map[string]string{"role": "web", "dc": "fra"}, Classes: []string{"settings", "profile::web"}},
		{Name: "db-01", Tags: map[string]string{"segment": "prod"}, Facts: map[string]string{"role": "db", "dc": "ams"}, Classes: []string{"settings", "profile::db", "ntp"}},
		{Name: "broken-01", Tags: map[string]string{"segment": "lab"}, Classes: []string{"settings", "ntp"},
			FactsCommand: []string{"sh", "-c", "echo 'Error: Facter: cannot read /sys/firmware' >&2; exit 1"}},
	}})
}

// compound: db-01 (ams, no web class) and web-02 (web in fra).
const compound = "(fact:dc=ams and not class:profile::web) or (class:profile::web and fact:dc=fra)"

func memberNames(t *testing.T, f *deployrig.Rig, args ...string) string {
	t.Helper()
	return names(membersJSON(t, f.CLI(nil, append([]string{"members", "--format", "json"}, args...)...)))
}

func resultNodes(t *testing.T, r deployrig.Result, code int) string {
	t.Helper()
	if r.Code != code {
		t.Fatalf("exit %d, want %d: %s", r.Code, code, r)
	}
	var out []string
	for n, state := range states(decodeResult(t, r)) {
		out = append(out, n+":"+state)
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

func TestSelectReachesWhatPuppetKnows(t *testing.T) {
	f := factsRig(t)
	notLab := []string{"--tag", "segment=qa|prod"}

	// members: whom each filter reaches.
	if got := memberNames(t, f, append(notLab, "--fact", "role=web")...); got != "web-01,web-02" {
		t.Fatalf("--fact role=web: %s", got)
	}
	if got := memberNames(t, f, "--class", "ntp"); got != "broken-01,db-01,web-01" {
		// broken-01 cannot read its facts, but no fact is asked.
		t.Fatalf("--class ntp: %s", got)
	}
	if got := memberNames(t, f, append(notLab, "--select", compound)...); got != "db-01,web-02" {
		t.Fatalf("--select %s: %s", compound, got)
	}
	if got := memberNames(t, f, "--select", "fact:os.family=Debian and not (tag:segment=lab or tag:role=puppetmaster)"); got != "db-01,web-01,web-02" {
		t.Fatalf("a fact of Facter's own: %s", got)
	}
	if got := memberNames(t, f, append(notLab, "--fact", "dc=ams", "--class", "profile::web")...); got != "web-01" {
		t.Fatalf("--fact and --class together: %s", got)
	}
	if got := memberNames(t, f, append(notLab, "--fact", "role=nothing")...); got != "" {
		t.Fatalf("no match lists none: %s", got)
	}
	list := filepath.Join(t.TempDir(), "nodes.txt")
	if err := os.WriteFile(list, []byte("# the canaries\nweb-02\n\ndb-01   # the database\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := memberNames(t, f, "--nodes", list); got != "db-01,web-02" {
		t.Fatalf("--nodes: %s", got)
	}

	// deploy --fact: the event names the two, and only they run.
	r := f.CLI(nil, deployArgs("--ref", "v1", "--fact", "role=web", "--tag", "segment=qa|prod", "--format", "json")...)
	if got := resultNodes(t, r, 0); got != "web-01:finished,web-02:finished" {
		t.Fatalf("deploy --fact role=web: %s\n%s", got, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "2 node(s) match") {
		t.Fatalf("no line on the selection:\n%s", r.Stderr)
	}
	for node, want := range map[string]bool{"web-01": true, "web-02": true, "db-01": false, "broken-01": false, "master-01": false} {
		if got := f.File(node) != ""; got != want {
			t.Fatalf("%s ran: %v, want %v", node, got, want)
		}
	}

	// run --class, then the compound --select.
	r = f.CLI(nil, "run", "--class", "ntp", "--tag", "segment=qa|prod", "--poll-interval", "500ms", "--timeout", "3m", "--format", "json")
	if got := resultNodes(t, r, 0); got != "db-01:finished,web-01:finished" {
		t.Fatalf("run --class ntp: %s", got)
	}
	if f.File("db-01") == "" {
		t.Fatal("db-01 did not run")
	}
	r = f.CLI(nil, "run", "--select", compound, "--tag", "segment=qa|prod", "--poll-interval", "500ms", "--timeout", "3m", "--format", "json")
	if got := resultNodes(t, r, 0); got != "db-01:finished,web-02:finished" {
		t.Fatalf("run --select: %s", got)
	}
	r = f.CLI(nil, deployArgs("--ref", "v1", "--select", compound, "--tag", "segment=qa|prod", "--dry-run")...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "targets (2, --node db-01 --node web-02)") || !strings.Contains(r.Stdout, `"nodes":["db-01","web-02"]`) {
		t.Fatalf("deploy --select --dry-run: %s", r)
	}

	// status and disable/enable take them too.
	r = f.CLI(nil, "status", "--fact", "role=db", "--tag", "segment=qa|prod", "--format", "json")
	var rep orchestrate.StatusReport
	if err := json.Unmarshal([]byte(r.Stdout), &rep); r.Code != 0 || err != nil || len(rep.Nodes) != 1 || rep.Nodes[0].Node != "db-01" {
		t.Fatalf("status --fact role=db: %v %s", err, r)
	}
	if r := f.CLI(nil, "disable", "--class", "profile::db", "--message", "db maintenance, test"); r.Code != 0 || !strings.Contains(r.Stdout, "db-01") || strings.Contains(r.Stdout, "web-0") {
		t.Fatalf("disable --class: %s", r)
	}
	if r := f.CLI(nil, "enable", "--class", "profile::db"); r.Code != 0 || !strings.Contains(r.Stdout, "db-01") {
		t.Fatalf("enable --class: %s", r)
	}
}

// A node that cannot read its facts is named with the reason, and nothing
// is guessed: not deployed to, not left out in silence.
func TestSelectRefusesToGuessAboutANodeWithoutFacts(t *testing.T) {
	f := factsRig(t)
	r := f.CLI(nil, "members", "--fact", "role=web")
	if r.Code != 5 {
		t.Fatalf("members: %s", r)
	}
	oneLine(t, r, "broken-01 (reading its facts failed")
	if !strings.Contains(r.Stderr, "cannot read /sys/firmware") || !strings.Contains(r.Stderr, "will not guess") {
		t.Fatalf("the reason is not said: %s", r)
	}

	r = f.CLI(nil, deployArgs("--ref", "v1", "--fact", "role=web", "--format", "json")...)
	if r.Code != 5 {
		t.Fatalf("deploy: %s", r)
	}
	res := decodeResult(t, r)
	if res.Fired || len(res.Nodes) != 0 || !strings.Contains(res.Error, "broken-01") {
		t.Fatalf("result %+v", res)
	}
	for _, node := range []string{"web-01", "web-02", "broken-01"} {
		if f.File(node) != "" {
			t.Fatalf("%s ran", node)
		}
	}
	// Where its tags or classes decide, the node is no obstacle.
	if got := memberNames(t, f, "--select", "class:ntp and not tag:segment=lab"); got != "db-01,web-01" {
		t.Fatalf("%s", got)
	}
	if got := memberNames(t, f, "--select", "class:profile::web and fact:role=web"); got != "web-01,web-02" {
		t.Fatalf("broken-01 has no profile::web, so its facts do not matter: %s", got)
	}

	// Bad input is refused before anything is asked.
	for _, args := range [][]string{
		{"members", "--select", "fact:role=web and"},
		{"members", "--fact", "role"},
		{"members", "--class", "Web-Server"},
		{"members", "--fact", "role=(web"},
		{"members", "--nodes", filepath.Join(t.TempDir(), "missing.txt")},
		{"members", "--status", "failed", "--class", "ntp"},
		{"run", "--select", strings.Repeat("class:profile::web or ", 40) + "class:ntp"},
	} {
		if r := f.CLI(nil, args...); r.Code != 2 {
			t.Errorf("%v: %s", args, r)
		}
	}
	empty := filepath.Join(t.TempDir(), "empty.txt")
	os.WriteFile(empty, []byte("# nobody\n\n"), 0o644)
	if r := f.CLI(nil, "disable", "--nodes", empty, "--message", "x y"); r.Code != 2 || !strings.Contains(r.Stderr, "names no node") {
		t.Fatalf("an empty --nodes file: %s", r)
	}
}

package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidatorsRefuseShellAndOptionInjection(t *testing.T) {
	bad := map[string][]string{
		"module": {"", "Motd", "motd;rm -rf /", "motd$(id)", "../motd", "-motd", "motd module"},
		"ref":    {"", "--upload-pack=sh", "-x", "v1..v2", "a//b", "v1/", "v1.lock", "v1 && id", "v1;id", "$(id)"},
		"id":     {"", "../x", "a b", "-x", "a;b", strings.Repeat("x", 129)},
		"env":    {"", "Prod", "prod;x", "../x"},
	}
	check := map[string]func(string) error{"module": ValidModule, "ref": ValidRef, "id": ValidID, "env": ValidEnvironment}
	for kind, values := range bad {
		for _, v := range values {
			if check[kind](v) == nil {
				t.Errorf("%s %q accepted", kind, v)
			}
		}
	}
	good := map[string][]string{
		"module": {"motd", "profile_web2"},
		"ref":    {"main", "v1.2.0", "release/2026-11", "0123abcdef"},
		"id":     {"jenkins-release-42", "20261124T200102Z-ab12cd", "team:app+1"},
		"env":    {"production", "qa_2"},
	}
	for kind, values := range good {
		for _, v := range values {
			if err := check[kind](v); err != nil {
				t.Errorf("%s %q refused: %v", kind, v, err)
			}
		}
	}
}

func TestEncodeDeploySizesTheEventAsSerfDoes(t *testing.T) {
	d := Deploy{ID: strings.Repeat("x", 128), Module: "motd", Ref: "v1"}
	var last []byte
	for {
		d.Nodes = append(d.Nodes, "n")
		b, err := EncodeDeploy(&d)
		if err != nil {
			var tl *ErrTooLarge
			if !errors.As(err, &tl) || tl.Limit != MaxEventPayload || tl.Size <= MaxEventPayload {
				t.Fatalf("error %v", err)
			}
			break
		}
		if EventSize(EventDeploy, b) > MaxEventPayload {
			t.Fatalf("a payload encoding to %d bytes passed", EventSize(EventDeploy, b))
		}
		last = b
	}
	// The raw payload that fits is well under 512 bytes: serf's own
	// encoding takes the rest (the old check let 477-506 bytes through).
	if len(last)+len(EventDeploy) >= MaxEventPayload-20 {
		t.Fatalf("largest accepted payload %d bytes: the encoding overhead is not counted", len(last))
	}
}

func TestDecodeStrict(t *testing.T) {
	var d Deploy
	for _, bad := range []string{`{"id":"x","module":"m","ref":"r","evil":1}`, `{"id":"x"} {"id":"y"}`, `not json`, ``, `[]`} {
		if err := DecodeStrict([]byte(bad), &d); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
	if err := DecodeStrict([]byte(`{"id":"x","module":"m","ref":"r","tags":{"segment":"qa"}}`), &d); err != nil || d.Tags["segment"] != "qa" {
		t.Fatalf("%+v %v", d, err)
	}
	d.Tags["segment"] = "(qa"
	if d.Validate() == nil {
		t.Fatal("a tag regexp that does not compile passed")
	}
}

func TestEncodeAnswerStaysUnderTheResponseLimit(t *testing.T) {
	for _, size := range []int{600, 700, 1000, 1024, 2000, 5000} {
		for _, node := range []string{"agent-01", strings.Repeat("n", 200)} {
			st := Status{V: Version, Node: node, Role: "agent", ID: "d", Phase: PhaseFailed,
				Message: strings.Repeat("<é>", size/4), SyncMsg: strings.Repeat("x", size/3)}
			b, err := EncodeAnswer(node, &st, &st.Message, &st.SyncMsg)
			if err != nil {
				t.Fatal(err)
			}
			if got := ResponseSize(node, b); got > MaxQueryResponse {
				t.Fatalf("%d-byte message from %d-byte name: answer encodes to %d bytes", size, len(node), got)
			}
			var back Status
			if err := json.Unmarshal(b, &back); err != nil || !utf8.ValidString(back.Message) || back.Message == "" {
				t.Fatalf("%v %q", err, back.Message)
			}
		}
	}
	if _, err := EncodeAnswer("n", &Status{Node: strings.Repeat("n", 2000)}); err == nil {
		t.Fatal("an answer that cannot shrink was accepted")
	}
}

func TestQuerySizeGrowsWithTheNodeFilter(t *testing.T) {
	var nodes []string
	for i := 0; QueryFits(QueryPuppetStatus, []byte(`{"id":"x"}`), nodes, nil, 5e9, "cli"); i++ {
		nodes = append(nodes, fmt.Sprintf("agent-%03d", i))
	}
	// About 11 bytes a name: around 80 names fit, never 100.
	if len(nodes) < 40 || len(nodes) > 95 {
		t.Fatalf("%d node names fit in one query", len(nodes))
	}
}

func TestTruncate(t *testing.T) {
	if got := Truncate("héllo", 4); got != "h…" || !utf8.ValidString(got) {
		t.Fatalf("%q", got)
	}
	if Truncate("abc", 3) != "abc" || Truncate("abcdef", 2) != "" {
		t.Fatal("edges")
	}
}

// FuzzDeployPayload: whatever arrives as a deploy event, decoding and
// validating never panics, and anything that validates is safe to hand to
// git: no field starts with "-" or holds a shell metacharacter.
func FuzzDeployPayload(f *testing.F) {
	f.Add(`{"id":"x","module":"motd","ref":"v1"}`)
	f.Add(`{"id":"x","module":"motd","ref":"v1","tags":{"a":"b"},"nodes":["n"]}`)
	f.Add(`{"id":"-x","module":"motd;id","ref":"--upload-pack"}`)
	f.Fuzz(func(t *testing.T, payload string) {
		var d Deploy
		if DecodeStrict([]byte(payload), &d) != nil || d.Validate() != nil {
			return
		}
		for _, v := range []string{d.ID, d.Module, d.Ref, d.Environment} {
			if strings.HasPrefix(v, "-") || strings.ContainsAny(v, " ;&|$`'\"\\<>(){}*?\n") {
				t.Fatalf("unsafe value %q passed validation", v)
			}
		}
	})
}

// TestPuppetFlagsSurviveTheDeployEvent: the event's target tags and the
// Puppet tags must not share a JSON name (encoding/json drops the embedded
// field silently when they do).
func TestPuppetFlagsSurviveTheDeployEvent(t *testing.T) {
	d := Deploy{ID: "d1", Module: "motd", Ref: "v1", Tags: map[string]string{"segment": "qa"},
		PuppetFlags: PuppetFlags{Noop: true, Tags: "motd,ntp::config", SkipTags: "slow"}}
	b, err := EncodeDeploy(&d)
	if err != nil {
		t.Fatal(err)
	}
	var got Deploy
	if err := DecodeStrict(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.PuppetFlags != d.PuppetFlags || got.Tags["segment"] != "qa" {
		t.Fatalf("decoded %+v from %s", got, b)
	}
	for _, bad := range []string{"motd;rm", "Motd", "a b", ",motd", strings.Repeat("a", 201)} {
		if err := (PuppetFlags{Tags: bad}).Validate(); err == nil {
			t.Errorf("puppet tags %q accepted", bad)
		}
	}
}

package protocol

import (
	"strings"
	"testing"
)

// encoding/json matches keys case-insensitively: before keys.go, every one
// of these was decoded as if spelt in lower case.
func TestDecodeStrictRefusesKeysInAnotherCase(t *testing.T) {
	for _, c := range []struct {
		payload string
		v       any
	}{
		{`{"ID":"d1","MODULE":"motd","REF":"v1"}`, &Deploy{}},
		{`{"id":"d1","Module":"motd","ref":"v1"}`, &Deploy{}},
		{`{"id":"d1","module":"motd","ref":"v1","Puppet_Tags":"motd"}`, &Deploy{}}, // embedded PuppetFlags
		{`{"id":"d1","module":"motd","ref":"v1","build":{"TAG":"t"}}`, &Deploy{}},  // nested Build
		{`{"id":"d1","module":"motd","ref":"v1","ſkip_masters":true}`, &Deploy{}},  // Unicode folding: ſ is s
		{`{"Id":"r1"}`, &RunRequest{}},
		{`{"id":"r1","build":{"Url":"u"}}`, &RunRequest{}},
		{`{"ID":"d1"}`, &StatusRequest{}},
		{`{"id":"d1","KNOWN":true}`, &StatusRequest{}},
		{`{"MSG":"why"}`, &LockRequest{}},
		{`{"v":1,"node":"a","role":"agent","phase":"idle","last":{"v":1,"node":"","role":"","PHASE":"failed"}}`, &Status{}},
	} {
		err := DecodeStrict([]byte(c.payload), c.v)
		if err == nil || !strings.Contains(err.Error(), "case-sensitive") {
			t.Errorf("DecodeStrict(%s) = %v, want refused for its key's case", c.payload, err)
		}
	}
	var d Deploy
	if err := DecodeStrict([]byte(`{"id":"d1","module":"motd","ref":"v1","puppet_tags":"motd","build":{"tag":"t"},"tags":{"SEGMENT":"qa"}}`), &d); err != nil {
		t.Fatalf("a well-formed deploy (a tag key is data, any case) was refused: %v", err)
	}
	if d.Tags["SEGMENT"] != "qa" || d.PuppetFlags.Tags != "motd" || d.Build.Tag != "t" {
		t.Fatalf("decoded %+v", d)
	}
	if err := DecodeStrict([]byte(`{"id":"d1","unknown":1}`), &StatusRequest{}); err == nil {
		t.Fatal("an unknown field was accepted")
	}
}

// An answer may carry fields this version does not know (a newer node), but
// not a known field in another case.
func TestDecodeAnswerRefusesKeysInAnotherCase(t *testing.T) {
	var st Status
	if err := DecodeAnswer([]byte(`{"v":1,"node":"a","role":"agent","phase":"idle","PHASE":"failed"}`), &st); err == nil {
		t.Fatalf("an answer with PHASE was accepted: %+v", st)
	}
	var a RunAnswer
	if err := DecodeAnswer([]byte(`{"v":1,"node":"a","Result":"started"}`), &a); err == nil {
		t.Fatalf("an answer with Result was accepted: %+v", a)
	}
	st = Status{}
	if err := DecodeAnswer([]byte(`{"v":1,"node":"a","role":"agent","phase":"idle","from_the_future":{"X":1}}`), &st); err != nil || st.Phase != "idle" {
		t.Fatalf("a newer node's answer: %+v %v", st, err)
	}
}

// A tag key is written to logs and reports: a line break in it forged log
// lines on every master (docs/security.md).
func TestValidTagFilterRefusesALineBreakInTheKey(t *testing.T) {
	for _, key := range []string{"segment\nFAKE handler line", "seg\rment", "seg\x1b[31m", "a=b", "\xff"} {
		err := ValidTagFilter(key, "qa")
		if err == nil {
			t.Errorf("key %q accepted", key)
			continue
		}
		if strings.ContainsAny(err.Error(), "\n\r\x1b") {
			t.Errorf("key %q: error is not one line: %q", key, err)
		}
	}
	if err := ValidTagFilter("segment", "qa"); err != nil {
		t.Fatal(err)
	}
}

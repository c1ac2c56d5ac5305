package protocol

// Fuzz targets for everything that decodes bytes from the network or the
// user. Run one at a time, e.g.
//
//	go test -run '^$' -fuzz '^FuzzDecodeDeploy$' -fuzztime 60s ./protocol/
//
// Without -fuzz the seeds and testdata/fuzz/<Name>/ run as plain tests.
// docs/fuzzing.md has the figures of the last runs.

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// nested is JSON nested n levels deep: arrays, or objects under "k".
func nested(n int, array bool) string {
	if array {
		return strings.Repeat("[", n) + strings.Repeat("]", n)
	}
	return strings.Repeat(`{"k":`, n) + "1" + strings.Repeat("}", n)
}

// hostilePayloads are seeds every payload and answer decoder gets.
var hostilePayloads = []string{
	``, ` `, `null`, `{}`, `[]`, `"x"`, `1`, `not json`,
	`{"id":"x"} {"id":"y"}`,
	`{"id":1}`, `{"id":null}`, `{"id":["x"]}`, `{"id":{"a":1}}`, `{"id":true}`,
	`{"id":"x","evil":1}`, `{"ID":"x"}`, `{"id":"x","id":"y"}`,
	"{\"id\":\"x\x00\"}", `{"id":"x\u0000y"}`, "{\"id\":\"\xff\xfe\"}", `{"id":"\ud800"}`,
	"{\"id\":\"\x1b[31mred\x1b[0m\"}", `{"msg":"\u001b]0;title\u0007"}`,
	`{"id":"` + strings.Repeat("x", 5000) + `"}`,
	`{"tags":` + nested(200, false) + `}`,
	`{"build":` + nested(10000, true) + `}`,
	nested(20000, true), nested(20000, false),
	`{"last":` + strings.Repeat(`{"last":`, 500) + `{}` + strings.Repeat("}", 501),
	`{"v":1e400}`, `{"v":1.5}`, `{"v":-1}`, `{"exit":"0"}`, `{"dur":"1s"}`, `{"dur":1e308}`,
	`{"changed":9223372036854775808}`, `{"started":-9223372036854775808}`,
	`{"req":null}`, `{"req":[]}`, `{"tags":{}}`, `{"nodes":[]}`, `{"nodes":[null]}`,
	`{"known":"true"}`, `{"skip_masters":1}`,
}

// checkOneLine is what every error that reaches a user or a log must be:
// one non-empty line of valid UTF-8.
func checkOneLine(t *testing.T, what string, err error) {
	t.Helper()
	msg := err.Error()
	if msg == "" || strings.ContainsAny(msg, "\n\r") || !utf8.ValidString(msg) {
		t.Fatalf("%s: error is not one line of UTF-8: %q", what, msg)
	}
}

// checkStrict is the contract of DecodeStrict on one payload type: it never
// panics; what it accepts is exactly one JSON document; what it decodes
// encodes and decodes strictly to the same value (norm folds what JSON
// cannot tell apart, such as an empty map and none); its errors are one line.
func checkStrict[T any](t *testing.T, payload []byte, norm func(*T)) (*T, bool) {
	t.Helper()
	v := new(T)
	if err := DecodeStrict(payload, v); err != nil {
		checkOneLine(t, "DecodeStrict", err)
		return nil, false
	}
	if !json.Valid(payload) {
		t.Fatalf("DecodeStrict accepted %q, which is not one JSON document", payload)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("decoded %q but cannot encode %+v: %v", payload, v, err)
	}
	back := new(T)
	if err := DecodeStrict(b, back); err != nil {
		t.Fatalf("%q decoded to %+v, whose encoding %q does not decode: %v", payload, v, b, err)
	}
	norm(v)
	norm(back)
	if !reflect.DeepEqual(v, back) {
		t.Fatalf("%q decoded to %+v, re-encoded %q decodes to %+v", payload, v, b, back)
	}
	return v, true
}

// checkSafe: a validated value can be handed to git and used in a file name.
func checkSafe(t *testing.T, values ...string) {
	t.Helper()
	for _, v := range values {
		if strings.HasPrefix(v, "-") || strings.ContainsAny(v, " ;&|$`'\"\\<>(){}*?\n\r\t\x00") || !utf8.ValidString(v) {
			t.Fatalf("unsafe value %q passed validation", v)
		}
	}
}

func addSeeds(f *testing.F, seeds ...string) {
	for _, s := range append(seeds, hostilePayloads...) {
		f.Add([]byte(s))
	}
}

func normDeploy(d *Deploy) {
	if len(d.Tags) == 0 {
		d.Tags = nil
	}
	if len(d.Nodes) == 0 {
		d.Nodes = nil
	}
}

// FuzzDecodeDeploy: the deploy event as a master decodes it.
func FuzzDecodeDeploy(f *testing.F) {
	addSeeds(f,
		`{"id":"x","module":"motd","ref":"v1"}`,
		`{"id":"jenkins-release-42","module":"motd","ref":"release/2026-11","env":"production","tags":{"segment":"qa|prod","fqdn":"agent-0[1-9]"},"nodes":["agent-01","agent-02"],"skip_masters":true,"build":{"tag":"jenkins-app-42","url":"https://ci.example/job/app/42/","job":"app"}}`,
		`{"id":"x","module":"m","ref":"r","tags":{"segment":"(qa"}}`,
		`{"id":"x","module":"m","ref":"r","tags":{"segment":"a{1001}"}}`,
		`{"id":"x","module":"m","ref":"r","tags":{"":"qa"}}`,
		`{"id":"x","module":"m","ref":"r","tags":{"k":"\\pL+"}}`,
		`{"id":"-x","module":"motd;id","ref":"--upload-pack"}`,
		`{"id":"x","module":"motd","ref":"v1..v2"}`,
		`{"id":"x","module":"motd","ref":"v1","nodes":["-n","a b"]}`,
		`{"id":"x","module":"motd","ref":"v1","build":null}`,
		`{"id":"x","module":"motd","ref":"v1","build":{"tag":1}}`,
		`{"id":"x","module":"motd","ref":"v1","tags":{"a":1}}`,
	)
	f.Fuzz(func(t *testing.T, payload []byte) {
		d, ok := checkStrict(t, payload, normDeploy)
		if !ok {
			return
		}
		if err := d.Validate(); err != nil {
			checkOneLine(t, "Deploy.Validate", err)
			return
		}
		checkSafe(t, d.ID, d.Module, d.Ref, d.Environment)
		checkSafe(t, d.Nodes...)
		for k, re := range d.Tags {
			// Every receiver anchors the filter (serfrpc.Anchor) and serf
			// compiles it on each node: one that does not compile there
			// reaches nobody, silently.
			if _, err := regexp.Compile("^(?:" + re + ")$"); err != nil || k == "" {
				t.Fatalf("tag filter %q=%q passed validation but anchored does not compile: %v", k, re, err)
			}
		}
		b, err := EncodeDeploy(d)
		if err != nil {
			var tl *ErrTooLarge
			if !errors.As(err, &tl) || tl.Size <= tl.Limit {
				t.Fatalf("EncodeDeploy(%+v): %v", d, err)
			}
			return
		}
		if !EventFits(EventDeploy, b) {
			t.Fatalf("EncodeDeploy gave %d bytes that serf refuses", EventSize(EventDeploy, b))
		}
		var back Deploy
		if err := DecodeStrict(b, &back); err != nil || back.Validate() != nil {
			t.Fatalf("encoded deploy %q does not decode and validate: %v", b, err)
		}
	})
}

// FuzzDecodeRunRequest: the puppetrun query payload as a node decodes it.
func FuzzDecodeRunRequest(f *testing.F) {
	addSeeds(f,
		`{"id":"fast-1"}`,
		`{"id":"20261124T200102Z-ab12cd","env":"qa_2","module":"motd","ref":"v1.2.0","skip_masters":true,"build":{"tag":"t","url":"u","job":"j"}}`,
		`{"id":"x","env":"Prod"}`, `{"id":"x","ref":"--upload-pack=sh"}`, `{"id":"x","module":"Motd"}`,
		`{"id":"../../etc/passwd"}`, `{"id":"team:app+1"}`,
	)
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, ok := checkStrict(t, payload, func(*RunRequest) {})
		if !ok {
			return
		}
		if err := r.Validate(); err != nil {
			checkOneLine(t, "RunRequest.Validate", err)
			return
		}
		checkSafe(t, r.ID, r.Environment, r.Module, r.Ref)
		if filepath.Base(r.ID) != r.ID || r.ID == "." || r.ID == ".." {
			t.Fatalf("id %q is not a plain file name", r.ID)
		}
	})
}

// FuzzDecodeStatusRequest: the puppet-status query payload as a node
// decodes it, then checks its id.
func FuzzDecodeStatusRequest(f *testing.F) {
	addSeeds(f, `{"id":"d1"}`, `{"id":"d1","known":true}`, `{"known":false}`, `{"id":""}`, `{"id":"a/b"}`)
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, ok := checkStrict(t, payload, func(*StatusRequest) {})
		if !ok || r.ID == "" {
			return
		}
		if err := ValidID(r.ID); err != nil {
			checkOneLine(t, "ValidID", err)
			return
		}
		checkSafe(t, r.ID)
	})
}

// FuzzDecodeAnswers: a node's answer as the CLI decodes it (json.Unmarshal,
// then V and Node are checked), and as a node of that name would encode it
// again: never over serf's response limit, never invalid UTF-8.
func FuzzDecodeAnswers(f *testing.F) {
	addSeeds(f,
		`{"v":1,"node":"agent-01","result":"started"}`,
		`{"v":1,"node":"agent-01","result":"already","msg":"finished","req":{"module":"motd","ref":"v1","env":"production"}}`,
		`{"v":1,"node":"agent-01","role":"agent","id":"d1","phase":"failed","reason":"resources_failed","msg":"Exec[boom]: returned 1","exit":2,"changed":1,"failed":1,"total":10,"dur":12.5,"started":1764014462,"finished":1764014475,"applied":"motd=0123abcdef ntp=fedcba"}`,
		`{"v":1,"node":"master-01","role":"master","id":"d1","phase":"unknown","sync":"failed","sync_msg":"fatal: couldn't find remote ref v9","sync_reason":"unknown_ref","commit":"abc","reached":3}`,
		`{"v":1,"node":"agent-01","role":"agent","phase":"idle","running":"d2","last":{"v":0,"node":"","role":"","id":"d1","phase":"finished","exit":0},"log_set_aside":2}`,
		`{"v":1,"node":"agent-01","phase":"failed","msg":"`+strings.Repeat(`<\u00e9>`, 400)+`"}`,
		`{"v":1,"node":"`+strings.Repeat("n", 300)+`","msg":"`+strings.Repeat("x", 2000)+`"}`,
		`{"v":"1","node":"agent-01"}`, `{"v":1,"node":7}`, `{"v":1,"exit":null}`, `{"v":1,"last":null}`, `{"v":1,"last":[]}`,
	)
	f.Fuzz(func(t *testing.T, payload []byte) {
		if st, ok := checkUnmarshal[Status](t, "status", payload); ok {
			// As a node answers: one level of Last, shortened messages.
			if st.Last != nil {
				st.Last.Last = nil
			}
			msgs := []*string{&st.Message, &st.SyncMsg}
			if st.Last != nil {
				msgs = append(msgs, &st.Last.Message)
			}
			checkAnswer(t, st.Node, st, msgs...)
		}
		if a, ok := checkUnmarshal[RunAnswer](t, "answer", payload); ok {
			checkAnswer(t, a.Node, a, &a.Message)
		}
	})
}

// checkUnmarshal decodes payload as the CLI decodes an answer (plain
// json.Unmarshal, unlike checkStrict); what decodes must encode again and
// decode back to the same value.
func checkUnmarshal[T any](t *testing.T, what string, payload []byte) (*T, bool) {
	t.Helper()
	v := new(T)
	if json.Unmarshal(payload, v) != nil {
		return nil, false
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%s %q decoded but does not encode: %v", what, payload, err)
	}
	back := new(T)
	if err := json.Unmarshal(b, back); err != nil || !reflect.DeepEqual(v, back) {
		t.Fatalf("%s %q decoded to %+v; re-encoded %q decodes to %+v (%v)", what, payload, *v, b, *back, err)
	}
	// DecodeAnswer is json.Unmarshal that refuses a field's name in
	// another case: what it accepts decodes to the same value, and every
	// answer a node encodes passes it.
	strict := new(T)
	if err := DecodeAnswer(payload, strict); err == nil && !reflect.DeepEqual(v, strict) {
		t.Fatalf("%s %q: DecodeAnswer gave %+v, json.Unmarshal %+v", what, payload, *strict, *v)
	} else if err != nil {
		checkOneLine(t, "DecodeAnswer", err)
	}
	if err := DecodeAnswer(b, new(T)); err != nil {
		t.Fatalf("%s encoded as %q is refused by DecodeAnswer: %v", what, b, err)
	}
	return v, true
}

// checkAnswer encodes v as node from would and decodes it again.
func checkAnswer[T any](t *testing.T, from string, v *T, msgs ...*string) {
	t.Helper()
	before := make([]string, len(msgs))
	for i, m := range msgs {
		before[i] = *m
	}
	b, err := EncodeAnswer(from, v, msgs...)
	if err != nil {
		var tl *ErrTooLarge
		if !errors.As(err, &tl) {
			t.Fatalf("EncodeAnswer: %v", err)
		}
		return
	}
	if !ResponseFits(from, b) || !utf8.Valid(b) {
		t.Fatalf("EncodeAnswer from %q gave %d bytes (serf size %d), valid UTF-8 %v", from, len(b), ResponseSize(from, b), utf8.Valid(b))
	}
	back := new(T)
	if err := json.Unmarshal(b, back); err != nil || !reflect.DeepEqual(v, back) {
		t.Fatalf("EncodeAnswer gave %q, which decodes to %+v, not %+v (%v)", b, back, v, err)
	}
	for i, m := range msgs {
		// A shortened message is a prefix of the original, marked.
		if *m != before[i] && !(*m == "" || strings.HasPrefix(before[i], strings.TrimSuffix(*m, "…"))) {
			t.Fatalf("message %q shortened to %q", before[i], *m)
		}
	}
}

// validCommit is what a config_version entry can carry: no whitespace.
func validCommit(c string) bool {
	return c != "" && strings.IndexFunc(c, unicode.IsSpace) < 0
}

// FuzzCodeVersion: ParseCodeVersion reads anything Puppet reports
// (version.config) without panicking, yields only valid modules and
// non-empty commits, and round-trips through FormatCodeVersion; and
// FormatCodeVersion's output parses back to its input for valid maps.
func FuzzCodeVersion(f *testing.F) {
	f.Add("motd=0123abcdef ntp=fedcba9876", "motd", "0123abcdef", "ntp", "fedcba")
	f.Add("1764014462", "motd", "a=b", "motd", "c")
	f.Add("motd= =x Motd=1 motd=a=b\tntp=\u00a0c\u2028d", "profile_web2", "HEAD", "x", "y")
	f.Add("\x00motd=\xff\xfe \x1b[31mntp=1", "m", "\xff", "n\x00", "c")
	f.Add(strings.Repeat("motd=abc ", 1000), strings.Repeat("m", 64), "c", strings.Repeat("m", 65), "c")
	f.Fuzz(func(t *testing.T, s, m1, c1, m2, c2 string) {
		p := ParseCodeVersion(s)
		for m, c := range p {
			if ValidModule(m) != nil || !validCommit(c) {
				t.Fatalf("ParseCodeVersion(%q) gave %q=%q", s, m, c)
			}
		}
		if again := ParseCodeVersion(FormatCodeVersion(p)); !reflect.DeepEqual(again, p) {
			t.Fatalf("ParseCodeVersion(%q) = %v; formatted %q parses to %v", s, p, FormatCodeVersion(p), again)
		}
		x := map[string]string{}
		for _, mc := range [][2]string{{m1, c1}, {m2, c2}} {
			if ValidModule(mc[0]) == nil && validCommit(mc[1]) {
				x[mc[0]] = mc[1]
			}
		}
		if got := ParseCodeVersion(FormatCodeVersion(x)); !reflect.DeepEqual(got, x) {
			t.Fatalf("FormatCodeVersion(%v) = %q parses to %v", x, FormatCodeVersion(x), got)
		}
	})
}

// FuzzValidTagFilter: an accepted filter compiles, also anchored as every
// receiver sends it to serf, and the anchored form matches no value the
// filter itself does not; a refused one says why in one line.
func FuzzValidTagFilter(f *testing.F) {
	for _, s := range [][3]string{
		{"segment", "qa", "qa"}, {"segment", "qa|prod", "prod"}, {"fqdn", "agent-01", "agent-010"},
		{"role", "puppetmaster", "puppetmaster"}, {"fqdn", `agent-0[1-9]\.example\.com`, "agent-01.example.com"},
		{"segment", "(qa", "qa"}, {"", "qa", "qa"}, {"k", "", ""}, {"k", "a{1001}", "a"}, {"k", "a{2}{2}{2}", "aaaaaaaa"},
		{"k", `\pL+`, "é"}, {"k", `(?i)QA`, "qa"}, {"k", `(?m)^qa$`, "x\nqa"}, {"k", `qa$|^prod`, "prod-1"},
		{"fqdn", `\Qagent-01.example.com\E`, "agent-01.example.com"}, {"k", "[[:alpha:]]+", "abc"}, {"k", `\bqa\b`, "qa"}, {"k", "(a)(b)", "ab"}, {"k", "*", ""},
		{"k", "(\n", "x"}, {"k", "\xff(", "\xff"}, {"k", "\x1b[31m(", ""}, {"k\nx", "(", ""},
		{"k", strings.Repeat("(", 1001) + strings.Repeat(")", 1001), ""},
		{"k", strings.Repeat("x", 5000), strings.Repeat("x", 200)},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, key, re, value string) {
		if err := ValidTagFilter(key, re); err != nil {
			checkOneLine(t, "ValidTagFilter", err)
			return
		}
		if key == "" {
			t.Fatalf("empty tag key accepted")
		}
		plain, err := regexp.Compile(re)
		if err != nil {
			t.Fatalf("%q accepted but does not compile: %v", re, err)
		}
		anchored, err := regexp.Compile("^(?:" + re + ")$")
		if err != nil {
			t.Fatalf("%q accepted but does not compile anchored: %v", re, err)
		}
		if anchored.NumSubexp() != plain.NumSubexp() {
			t.Fatalf("anchoring %q changed its groups: %d, %d", re, anchored.NumSubexp(), plain.NumSubexp())
		}
		// Tag values are short; matching a long one against a long
		// regexp only slows the fuzzer down.
		if len(value) <= 256 && anchored.MatchString(value) && !plain.MatchString(value) {
			t.Fatalf("%q anchored matches %q, which the filter does not", re, value)
		}
	})
}

// FuzzValidID: an accepted id is a safe, plain file name; a refused one is
// reported in one bounded line.
func FuzzValidID(f *testing.F) {
	for _, s := range []string{
		"jenkins-release-42", "20261124T200102Z-ab12cd", "team:app+1", "a..b", "a.",
		"", "../x", "a b", "-x", "a;b", ".", "..", "a/b", "a\\b", "a\x00b", "\xff", "é",
		strings.Repeat("x", 128), strings.Repeat("x", 129), strings.Repeat("\xff", 200), strings.Repeat("\n", 100),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := ValidID(s); err != nil {
			checkOneLine(t, "ValidID", err)
			if len(err.Error()) > 400 {
				t.Fatalf("ValidID(%d bytes): %d-byte error", len(s), len(err.Error()))
			}
			return
		}
		checkSafe(t, s)
		if len(s) == 0 || len(s) > 128 || filepath.Base(s) != s || s == "." || s == ".." || strings.HasPrefix(s, ".") {
			t.Fatalf("id %q accepted", s)
		}
		for _, r := range s {
			if r > unicode.MaxASCII || !unicode.IsPrint(r) {
				t.Fatalf("id %q accepted with %U", s, r)
			}
		}
	})
}

// FuzzTextBounds: CleanText grows text at most threefold (an invalid byte
// becomes U+FFFD) and never grows valid text; OneLine gives at most max
// bytes of valid UTF-8 on one line, with single spaces only, and is
// idempotent; ExitText shows the code or "-". (FuzzCleanText, in
// text_test.go, checks CleanText's characters.)
func FuzzTextBounds(f *testing.F) {
	for _, s := range hostile {
		f.Add(s, 64, 0)
	}
	f.Add("  a\n\tb \r\n c  ", 100, 2)
	f.Add("abcdéfgh", 8, -1)
	f.Add("ab🚀cd", 6, 1<<31)
	f.Add("a\u00a0b\u2028c\u0085d\u3000e", 5, 4)
	f.Add("ab cdefg", 6, 0)
	f.Add("\xff\xff\xff", 3, 0)
	f.Add("abc", 0, 0)
	f.Add("abc", -5, 0)
	f.Fuzz(func(t *testing.T, s string, max, code int) {
		c := CleanText(s)
		if len(c) > 3*len(s) || (utf8.ValidString(s) && len(c) > len(s)) {
			t.Fatalf("CleanText(%q) = %q grew from %d to %d bytes", s, c, len(s), len(c))
		}
		one := OneLine(s, max)
		if (max >= 0 && len(one) > max) || (max < 0 && one != "") || !utf8.ValidString(one) {
			t.Fatalf("OneLine(%q, %d) = %q", s, max, one)
		}
		for _, r := range one {
			if r != ' ' && (unicode.IsSpace(r) || unicode.IsControl(r) || !allowed(r)) {
				t.Fatalf("OneLine(%q, %d) = %q keeps %U", s, max, one, r)
			}
		}
		if strings.HasPrefix(one, " ") || strings.HasSuffix(one, " ") || strings.Contains(one, "  ") {
			t.Fatalf("OneLine(%q, %d) = %q: whitespace not folded", s, max, one)
		}
		if again := OneLine(one, max); again != one {
			t.Fatalf("OneLine is not idempotent: %q -> %q -> %q", s, one, again)
		}
		if folded := strings.Join(strings.Fields(c), " "); len(folded) <= max && one != folded {
			t.Fatalf("OneLine(%q, %d) = %q, cut though %q fits", s, max, one, folded)
		}
		if ExitText(nil) != "-" {
			t.Fatal("ExitText(nil)")
		}
		if got := ExitText(&code); got != strconv.Itoa(code) {
			t.Fatalf("ExitText(%d) = %q", code, got)
		}
	})
}

// Bugs the fuzzers found, kept as plain tests.

// FuzzDecodeDeploy: dec.More() reports no more data before a stray "]" or
// "}", so `{...}}` passed DecodeStrict as one document.
func TestDecodeStrictRefusesAStrayCloserAfterTheDocument(t *testing.T) {
	for _, bad := range []string{`{}}`, `{}]`, `{"id":"x","module":"motd","ref":"v1"} ]`, "{\"id\":\"x\"}\n}"} {
		var d Deploy
		if err := DecodeStrict([]byte(bad), &d); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
	var d Deploy
	if err := DecodeStrict([]byte("{\"id\":\"x\"} \n\t"), &d); err != nil || d.ID != "x" {
		t.Fatalf("trailing whitespace: %+v %v", d, err)
	}
}

// FuzzValidTagFilter: the filter was printed with %s and the regexp's own
// error quotes it raw, so a newline or invalid UTF-8 in it split or broke
// the message.
func TestValidTagFilterErrorIsOneLine(t *testing.T) {
	for _, c := range [][2]string{{"k", "(\n"}, {"k\nx", "("}, {"k", "\xff("}, {"k", "\x1b[31m("}} {
		err := ValidTagFilter(c[0], c[1])
		if err == nil || strings.ContainsAny(err.Error(), "\n\r\x1b") || !utf8.ValidString(err.Error()) {
			t.Errorf("ValidTagFilter(%q, %q) = %q", c[0], c[1], err)
		}
	}
}

// FuzzValidTagFilter: `\Q` with no `\E` compiles alone, but quotes away the
// ")$" that receivers add when they anchor it: serf then matched no node,
// and a node's handler MustCompiled it (master_tag) and panicked.
func TestValidTagFilterRefusesAFilterThatDoesNotCompileAnchored(t *testing.T) {
	for _, re := range []string{`\Q`, `\Qqa|prod`, `qa|\Qprod`} {
		if ValidTagFilter("segment", re) == nil {
			t.Errorf("%q accepted", re)
		}
	}
	if err := ValidTagFilter("fqdn", `\Qagent-01.example.com\E`); err != nil {
		t.Fatal(err)
	}
}

package serfrpc

// go test -run '^$' -fuzz '^FuzzParseTag$' -fuzztime 60s ./serfrpc/
// (docs/fuzzing.md)

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseTag: a --tag or master_tag argument. An accepted one splits
// back into the argument, names a non-empty key without "=", and compiles
// once anchored as it is sent to serf (a node's handler MustCompiles it);
// the anchored form matches no value the regexp does not. A refused one
// says why in one line of UTF-8.
func FuzzParseTag(f *testing.F) {
	for _, s := range [][2]string{
		{"segment=qa", "qa"}, {"fqdn=agent-01", "agent-010"}, {"fqdn=agent-01=x", "agent-01=x"},
		{"role=puppetmaster", "puppetmaster"}, {"fqdn=agent-01|agent-02", "agent-02"},
		{`fqdn=agent-0[1-9]\.example\.com`, "agent-01.example.com"}, {"segment=", ""}, {"=qa", "qa"},
		{"segment", ""}, {"segment=(qa", "qa"}, {"segment=qa([", ""}, {`k=\pL+`, "é"}, {"k=(?i)QA", "qa"},
		{`fqdn=\Qagent-01.example.com\E`, "agent-01.example.com"},
		{"k=a{1001}", ""}, {"k=(\n", ""}, {"k=\xff(", ""}, {"\x1b[31mk=(", ""}, {"k\x00=v", "v"},
		{"k=" + strings.Repeat("(", 1000) + strings.Repeat(")", 1000), ""},
		{"k=" + strings.Repeat("x", 5000), strings.Repeat("x", 200)},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, s, value string) {
		key, re, err := ParseTag(s)
		if err != nil {
			if msg := err.Error(); msg == "" || strings.ContainsAny(msg, "\n\r") || !utf8.ValidString(msg) {
				t.Fatalf("ParseTag(%q): error is not one line of UTF-8: %q", s, msg)
			}
			return
		}
		if key+"="+re != s || key == "" || strings.Contains(key, "=") {
			t.Fatalf("ParseTag(%q) = %q, %q", s, key, re)
		}
		f := Filter{Tags: map[string]string{key: re}}
		sent := f.AnchoredTags()[key]
		if sent != Anchor(re) || !strings.Contains(f.String(), "--tag "+s) {
			t.Fatalf("filter %q: sent %q, described %q", s, sent, f.String())
		}
		plain := regexp.MustCompile(re)
		anchored, err := regexp.Compile(sent)
		if err != nil {
			t.Fatalf("ParseTag(%q) accepted %q, but anchored %q does not compile: %v", s, re, sent, err)
		}
		if len(value) <= 256 && anchored.MatchString(value) && !plain.MatchString(value) {
			t.Fatalf("%q matches %q, which %q does not", sent, value, re)
		}
	})
}

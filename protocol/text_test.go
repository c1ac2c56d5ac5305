package protocol

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanText(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"plain", "Exec[boom]: returned 1", "Exec[boom]: returned 1"},
		{"keeps tab newline cr", "a\tb\nc\r\nd", "a\tb\nc\r\nd"},
		{"keeps multibyte", "héllo ✓ 日本 🚀", "héllo ✓ 日本 🚀"},
		{"puppet colour", "\x1b[1;31mError: Could not apply\x1b[0m", "Error: Could not apply"},
		{"csi no params", "a\x1b[mb", "ab"},
		{"csi private", "a\x1b[?25lb\x1b[?25h", "ab"},
		{"csi cut short", "a\x1b[31", "a"},
		{"csi cut by newline", "a\x1b[31\nb", "a\nb"},
		{"osc bel", "\x1b]0;title\x07text", "text"},
		{"osc st", "\x1b]8;;https://x.example\x1b\\link\x1b]8;;\x1b\\", "link"},
		{"osc unterminated keeps next line", "a\x1b]0;title\nb", "a\nb"},
		{"osc unterminated at end", "a\x1b]0;title", "a"},
		{"dcs", "a\x1bPq#0;2\x1b\\b", "ab"},
		{"two-byte", "a\x1b7b\x1b8c\x1bcd", "abcd"},
		{"charset", "a\x1b(Bb", "ab"},
		{"lone esc at end", "abc\x1b", "abc"},
		{"esc before multibyte", "a\x1bé", "aé"},
		{"nul and c0", "a\x00b\x01c\x08d\x0be\x0cf\x1fg", "abcdefg"},
		{"del and c1", "a\x7fb\u0085c\u009bd", "abcd"},
		{"xml nonchars", "a\ufffeb\uffffc", "abc"},
		{"keeps U+FFFD", "a\ufffdb", "a\ufffdb"},
		{"invalid bytes", "a\xffb\xc3", "a\ufffdb\ufffd"},
		{"encoded surrogate", "a\xed\xa0\x80b", "a\ufffd\ufffd\ufffdb"},
		{"cdata terminator kept", "a]]>b", "a]]>b"},
		{"empty", "", ""},
	}
	for _, c := range cases {
		if got := CleanText(c.in); got != c.want {
			t.Errorf("%s: CleanText(%q) = %q, want %q", c.name, c.in, got, c.want)
		}
	}
}

func TestOneLine(t *testing.T) {
	cases := []struct {
		name, in string
		max      int
		want     string
	}{
		{"folds whitespace", "  a\n\tb \r\n c  ", 100, "a b c"},
		{"escape between words", "a\x1b[0m \x1b[31mb", 100, "a b"},
		{"short enough", "abcdef", 6, "abcdef"},
		{"cut", "abcdefghij", 8, "abcde…"},
		// "é" is 2 bytes at offsets 4-5: a cut at byte 5 must not split it.
		{"cut before multibyte", "abcdéfgh", 8, "abcd…"},
		{"cut after multibyte", "abcdéfghij", 9, "abcdé…"},
		{"emoji at cut", "ab🚀cd", 6, "ab…"},
		{"tiny max", "abcdef", 2, ""},
	}
	for _, c := range cases {
		got := OneLine(c.in, c.max)
		if got != c.want {
			t.Errorf("%s: OneLine(%q, %d) = %q, want %q", c.name, c.in, c.max, got, c.want)
		}
		if len(got) > c.max || !utf8.ValidString(got) {
			t.Errorf("%s: %q is over %d bytes or not UTF-8", c.name, got, c.max)
		}
	}
}

// checkClean is CleanText's contract, for the fuzzer and the table alike.
func checkClean(t *testing.T, in string) {
	t.Helper()
	out := CleanText(in)
	if !utf8.ValidString(out) {
		t.Fatalf("CleanText(%q) = %q: not valid UTF-8", in, out)
	}
	for _, r := range out {
		xmlChar := r == '\t' || r == '\n' || r == '\r' ||
			(r >= 0x20 && r <= 0xd7ff) || (r >= 0xe000 && r <= 0xfffd) || (r >= 0x10000 && r <= 0x10ffff)
		if r == 0x1b || !xmlChar || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			t.Fatalf("CleanText(%q) = %q: keeps %U", in, out, r)
		}
	}
	if again := CleanText(out); again != out {
		t.Fatalf("CleanText is not idempotent: %q -> %q -> %q", in, out, again)
	}
	if one := OneLine(in, 64); len(one) > 64 || !utf8.ValidString(one) || strings.ContainsAny(one, "\x1b\n\t\r") {
		t.Fatalf("OneLine(%q, 64) = %q", in, one)
	}
}

var hostile = []string{
	"\x1b[0;31mError:\x1b[0m Could not retrieve catalog\x00\x01",
	"\x1b", "\x1b[", "\x1b]", "\x1b]\x1b", "\x1b\x1b[m", "\x1b[\xff", "\x1b]\xe2\x82",
	"\xe2\x82", "\xf0\x9f\x9a", "\xed\xbf\xbf", "\xef\xbf\xbe", "\u009b31m",
	"]]>", "<![CDATA[", "\x1b[31m" + strings.Repeat("é", 5000) + "\x1b[0m",
}

func TestCleanTextHostile(t *testing.T) {
	for _, s := range hostile {
		checkClean(t, s)
	}
}

func FuzzCleanText(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	f.Add("\x1b]0;title\x07text\x1bPq\x1b\\\x1b(B\r\n")
	f.Fuzz(checkClean)
}

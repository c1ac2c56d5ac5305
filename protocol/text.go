package protocol

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// CleanText makes text from a node (Puppet colours its messages, and a
// failing command may print anything) safe for every report: it returns
// valid UTF-8 (invalid bytes become U+FFFD), with ANSI/VT escape sequences
// removed whole and every character XML 1.0 forbids dropped, along with DEL
// and the C1 controls. Tab, newline and carriage return are kept. A single
// invalid character in a JUnit file makes Jenkins drop the whole report.
func CleanText(s string) string {
	if isClean(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		if s[i] == 0x1b {
			i = skipEscape(s, i)
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
			continue
		}
		if allowed(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// OneLine is CleanText with every run of whitespace folded to one space,
// cut to at most max bytes on a character boundary: for table cells,
// attributes and progress lines.
func OneLine(s string, max int) string {
	return Truncate(strings.Join(strings.Fields(CleanText(s)), " "), max)
}

// isClean is the fast path: most text needs no change.
func isClean(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !allowed(r) {
			return false
		}
	}
	return true
}

// allowed reports whether r may stay in a report: XML 1.0's Char production
// without DEL and the C1 controls, which only ever mean terminal control.
// Surrogates cannot occur here: decoding turns them into U+FFFD.
func allowed(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r':
		return true
	case r < 0x20 || r == 0x7f:
		return false
	case r >= 0x80 && r <= 0x9f:
		return false
	case r == 0xfffe || r == 0xffff:
		return false
	}
	return true
}

// skipEscape returns the index just past the escape sequence that starts
// with the ESC at s[i]. It follows ECMA-48: CSI (ESC [ ... final byte),
// string sequences (OSC ESC ], DCS ESC P, SOS ESC X, PM ESC ^, APC ESC _)
// ended by BEL or ESC \, and ESC with intermediate bytes and one final
// byte (ESC ( B, ESC 7, ESC c...). A malformed sequence ends where it stops
// looking like one, so that at most the sequence itself is lost.
func skipEscape(s string, i int) int {
	i++ // ESC
	if i >= len(s) {
		return i
	}
	switch c := s[i]; {
	case c == '[':
		i++
		for i < len(s) {
			c := s[i]
			switch {
			case c >= 0x40 && c <= 0x7e: // final byte
				return i + 1
			case c >= 0x20 && c <= 0x3f: // parameter and intermediate bytes
				i++
			default: // not part of a CSI: the sequence was cut short
				return i
			}
		}
		return i
	case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
		i++
		for i < len(s) {
			switch {
			case s[i] == 0x07:
				return i + 1
			case s[i] == 0x1b:
				if i+1 < len(s) && s[i+1] == '\\' {
					return i + 2
				}
				return i // another sequence starts: this one was never ended
			case s[i] == '\n':
				return i // unterminated: keep the following lines
			}
			i++
		}
		return i
	case c >= 0x20 && c <= 0x2f: // intermediate bytes, then one final byte
		for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
			i++
		}
		if i < len(s) && s[i] >= 0x30 && s[i] <= 0x7e {
			i++
		}
		return i
	case c >= 0x30 && c <= 0x7e: // two-byte sequence
		return i + 1
	}
	return i // a lone ESC
}

// ExitText shows a Puppet exit code, or "-" when there is none.
func ExitText(code *int) string {
	if code == nil {
		return "-"
	}
	return strconv.Itoa(*code)
}

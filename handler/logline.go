package handler

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// lineWriter is what the handler's logger writes through: every message
// becomes exactly one line of handler.log. Messages carry fields from
// payloads that any cluster member can send (a tag key, a ref, an error
// quoting them); a line break or a terminal escape in one would let that
// member forge log lines or hide real ones. Each control character, line
// separator and invalid byte is written as a Go escape (\n, \x1b, \u2028,
// \xff) instead. (Backslashes are left alone: many messages quote with %q
// already, and a payload's own "\n" text still cannot break a line.) The
// logger calls Write once per message, with the message's own final
// newline, which is kept.
type lineWriter struct{ w io.Writer }

func (l lineWriter) Write(p []byte) (int, error) {
	msg, nl := bytes.CutSuffix(p, []byte("\n"))
	var b bytes.Buffer
	b.Grow(len(p) + 16)
	for len(msg) > 0 {
		r, size := utf8.DecodeRune(msg)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, msg[0])
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			q := strconv.QuoteRune(r) // '\n', '\x1b', '\u2028'
			b.WriteString(q[1 : len(q)-1])
		default:
			b.Write(msg[:size])
		}
		msg = msg[size:]
	}
	if nl {
		b.WriteByte('\n')
	}
	if _, err := l.w.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

package handler

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// A run may print hundreds of megabytes (a debug flag, a runaway exec).
// The worker and the status handler read its output and JSON log only to
// classify the run and name its errors, so they keep a bounded part: the
// first notable lines (errors and the evidence classify looks for) and the
// output's tail. Memory stays within about maxNotableLines*maxLineBytes +
// outputTailBytes, whatever Puppet printed.
const (
	maxLineBytes     = 4 << 10  // console output
	maxLogLineBytes  = 64 << 10 // a JSON log entry; a longer one is skipped
	maxNotableLines  = 200
	outputTailBytes  = 64 << 10
	maxLogEntries    = 1000
	maxMessageLength = 4000
)

// readOutput returns the evidence in Puppet's console output at path: its
// notable lines, then its tail. A missing file is no output.
func readOutput(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var notable []string
	var lower []byte
	// The tail is kept in twice its size and cut back when full, so that
	// each byte is copied about once.
	tail := make([]byte, 0, 2*outputTailBytes+maxLineBytes+1)
	_ = eachLine(f, maxLineBytes, func(line []byte) {
		if len(notable) < maxNotableLines && notableLine(line, &lower) {
			notable = append(notable, string(line))
		}
		if len(tail)+len(line)+1 > cap(tail) {
			tail = append(tail[:0], tail[len(tail)-outputTailBytes:]...)
		}
		tail = append(append(tail, line...), '\n')
	})
	if len(tail) > outputTailBytes {
		tail = tail[len(tail)-outputTailBytes:]
	}
	if len(notable) == 0 {
		return string(tail)
	}
	return strings.Join(notable, "\n") + "\n" + string(tail)
}

// evidence is what classify looks for in the output besides errors.
var evidence = []*regexp.Regexp{disabledOutput, lockedOutput, compileOutput, unreachableOutput}

// evidenceWords: every line an evidence regexp matches contains one of
// these (lower case). Looking for them first keeps a 200 MB output from
// costing a regexp search per line (TestEvidenceWordsCoverTheRegexps).
var evidenceWords = [][]byte{
	[]byte("error"), []byte("could not"), []byte("disabled"), []byte("in progress"), []byte("agent_catalog_run"),
	[]byte("connect"), []byte("no route"), []byte("getaddrinfo"), []byte("name or service"), []byte("expired"), []byte("certificate"),
}

// notableLine reports whether classify or errorLines may need the line;
// lower is scratch space for its lower-case copy.
func notableLine(line []byte, lower *[]byte) bool {
	*lower = append((*lower)[:0], line...)
	for i, c := range *lower {
		if 'A' <= c && c <= 'Z' {
			(*lower)[i] = c + 'a' - 'A'
		}
	}
	candidate := false
	for _, w := range evidenceWords {
		if bytes.Contains(*lower, w) {
			candidate = true
			break
		}
	}
	if !candidate {
		return false
	}
	if bytes.IndexByte(line, 0x1b) >= 0 {
		line = ansi.ReplaceAll(line, nil)
	}
	if bytes.HasPrefix(bytes.TrimSpace(line), []byte("Error: ")) {
		return true
	}
	for _, re := range evidence {
		if re.Match(line) {
			return true
		}
	}
	return false
}

// readLogEntries reads the error entries of Puppet's JSON-lines log
// (--logdest FILE.jsonl): the only ones errorLines and failedResources use.
func readLogEntries(path string) []logEntry {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []logEntry
	_ = eachLine(f, maxLogLineBytes, func(line []byte) {
		if len(out) >= maxLogEntries || !bytes.Contains(line, []byte(`"err"`)) {
			return // cheap: most entries are not errors
		}
		var e logEntry
		if json.Unmarshal(line, &e) == nil && e.Level == "err" {
			e.Message = protocol.Truncate(e.Message, maxMessageLength)
			out = append(out, e)
		}
	})
	return out
}

// eachLine calls fn for every line of r, without its newline and cut to
// limit bytes. The line is only valid during the call.
func eachLine(r io.Reader, limit int, fn func(line []byte)) error {
	br := bufio.NewReaderSize(r, limit)
	var head []byte
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// An overlong line: keep its start, skip the rest. (The next
			// read overwrites what ReadSlice returned.)
			head = append(head[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			line = head
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		if len(line) > 0 || err == nil {
			fn(line)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

package handler

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// scriptNode is a node whose Puppet is the shell script given, run as
// `sh SCRIPT PIDFILE`: the script writes its pid to "$1" first (startRun
// waits for it).
func scriptNode(t *testing.T, script string) *Node {
	t.Helper()
	path := filepath.Join(t.TempDir(), "puppet.sh")
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	n := testNode(t, "/bin/sh", path, "STATE/puppet.pid")
	n.cfg.Puppet.Command[2] = filepath.Join(n.cfg.StateDir, "puppet.pid")
	return n
}

// allocated returns how many bytes fn allocated on the heap.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHugeRunOutputStaysBounded: a run that prints 200 MB (one line of
// 1 MB among them) and fails with an error at its very end is recorded
// with that error, and its worker allocates a bounded amount reading the
// output, not the 200 MB (before: the whole file was read into memory).
func TestHugeRunOutputStaysBounded(t *testing.T) {
	const size = 200 << 20
	script := `echo $$ > "$1"
echo "Notice: Applied catalog"
head -c 1048576 /dev/zero | tr '\0' x; echo
yes "Notice: /Stage[main]/Motd/File[/etc/motd]/content: content changed '{sha256}aa' to '{sha256}bb'" | head -c ` + fmt.Sprint(size) + `
echo
echo "Error: the runaway exec gave up at the end"
exit 1`
	n := scriptNode(t, script)
	var werr error
	used := allocated(func() {
		werr = <-startRun(t, n, "huge-1", context.Background(), make(chan struct{}))
	})
	if werr != nil {
		t.Fatal(werr)
	}
	if info, err := os.Stat(filepath.Join(n.st.runDir("huge-1"), "puppet.log")); err != nil || info.Size() < size {
		t.Fatalf("the stand-in did not print %d bytes: %v %v", size, info, err)
	}
	rec, err := n.st.load("huge-1", KindRun)
	if err != nil || rec.Phase != protocol.PhaseFailed || rec.Reason != protocol.ReasonPuppetError ||
		!strings.Contains(rec.Message, "the runaway exec gave up at the end") {
		t.Fatalf("record %+v %v", rec, err)
	}
	t.Logf("worker allocated %.1f MiB for a %d MiB output", float64(used)/(1<<20), size>>20)
	if used > 32<<20 {
		t.Fatalf("the worker allocated %d MiB reading a %d MiB output; want a bound well below it", used>>20, size>>20)
	}
}

// TestHugeJSONLogStaysBounded: 100 MB of JSON log entries with a few
// errors, one of them a 200 kB line: the errors and failed resources are
// found, the overlong line skipped, and the reading allocates a bounded
// amount.
func TestHugeJSONLogStaysBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "puppet.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	notice := `{"level":"notice","message":"content changed '{sha256}aa' to '{sha256}bb'","source":"/Stage[main]/Motd/File[/etc/motd]/content","time":"2026-11-26T05:00:00+00:00"}` + "\n"
	fmt.Fprintf(w, `{"level":"err","message":"%s","source":"/Stage[main]/Motd/Exec[huge]/returns"}`+"\n", strings.Repeat("y", 200<<10))
	for i := 0; w.Buffered()+i*len(notice) < 100<<20; i++ {
		if i == 1000 {
			fmt.Fprintln(w, `{"level":"err","message":"change from 'notrun' to ['0'] failed: /bin/false returned 1","source":"/Stage[main]/Motd/Exec[/bin/false]/returns"}`)
		}
		w.WriteString(notice)
	}
	fmt.Fprintln(w, `{"level":"err","message":"Could not set 'file' on ensure: Permission denied","source":"/Stage[main]/Motd/File[/etc/motd]/ensure"}`)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if info, err := os.Stat(path); err != nil || info.Size() < 100<<20 {
		t.Fatalf("log %v %v", info, err)
	}

	var entries []logEntry
	used := allocated(func() { entries = readLogEntries(path) })
	failed := failedResources(entries)
	if len(entries) != 2 || len(failed) != 2 || failed[0].Resource != "Exec[/bin/false]" || failed[1].Resource != "File[/etc/motd]" {
		t.Fatalf("entries %+v, failed %+v", entries, failed)
	}
	t.Logf("reading a 100 MiB JSON log allocated %.1f MiB", float64(used)/(1<<20))
	if used > 16<<20 {
		t.Fatalf("reading a 100 MiB JSON log allocated %d MiB", used>>20)
	}
}

// TestReadOutputKeepsEvidence: the notable lines come first, in order,
// whatever their place; the tail keeps the last bytes.
func TestReadOutputKeepsEvidence(t *testing.T) {
	var b strings.Builder
	b.WriteString("\x1b[1;31mError: Could not retrieve catalog from remote server: Error 500 on SERVER\x1b[0m\n")
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&b, "Info: line %d\n", i)
	}
	b.WriteString("Error: a second error, after 20,000 lines\n")
	b.WriteString("Info: the last line\n")
	path := filepath.Join(t.TempDir(), "puppet.log")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out := readOutput(path)
	if !strings.HasPrefix(out, "\x1b[1;31mError: Could not retrieve catalog") || !strings.Contains(out, "[0m\nError: a second error") || !strings.HasSuffix(out, "Info: the last line\n") ||
		strings.Contains(out, "Info: line 1\n") || len(out) > outputTailBytes+1000 {
		t.Fatalf("output (%d bytes) starts %q, ends %q", len(out), protocol.Truncate(out, 100), out[len(out)-40:])
	}
	if o := classify(1, nil, nil, out, t.TempDir()); o.reason != protocol.ReasonCompileError {
		t.Fatalf("classified %+v", o)
	}
}

// TestEvidenceWordsCoverTheRegexps: each alternative of each evidence
// regexp, written out as a line, is notable, so that the cheap word check
// never hides evidence.
func TestEvidenceWordsCoverTheRegexps(t *testing.T) {
	unescape := strings.NewReplacer(`(?i)`, "", `\.`, ".", `\(`, "(", `\)`, ")", `(.*)`, "why")
	var lower []byte
	for _, re := range evidence {
		for _, alt := range strings.Split(unescape.Replace(re.String()), "|") {
			line := "Notice: " + alt + " here"
			if !re.MatchString(line) {
				t.Fatalf("test line %q does not match %s", line, re)
			}
			for _, l := range []string{line, strings.ToUpper(line)} {
				if re.MatchString(l) && !notableLine([]byte(l), &lower) {
					t.Errorf("%q (from %s) is not notable: add a word of it to evidenceWords", l, re)
				}
			}
		}
	}
}

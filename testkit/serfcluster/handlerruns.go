package serfcluster

import (
	"bufio"
	"os"
	"regexp"
)

// scriptRan is the line a serf agent (0.8 to 0.11) logs at -log-level debug
// after each handler it ran, whatever the handler printed: one line per
// fork of an -event-handler.
var scriptRan = regexp.MustCompile(`\[DEBUG\] agent: Event '([a-z-]+)' script output:`)

// HandlerRuns counts the event handlers an agent ran, by event type
// (member-join, member-leave, member-failed, member-update, member-reap,
// user, query), from its log (Node.LogPath), from byte offset from on.
func HandlerRuns(logPath string, from int64) (map[string]int, error) {
	f, err := os.Open(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(from, 0); err != nil {
		return nil, err
	}
	runs := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if m := scriptRan.FindSubmatch(sc.Bytes()); m != nil {
			runs[string(m[1])]++
		}
	}
	return runs, sc.Err()
}

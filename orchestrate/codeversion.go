package orchestrate

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// versionMismatch says how the code a run applied differs from
// --expect-version, or "" when it matches: every module=commit expected is
// applied (commits may be abbreviated), or the whole version is equal.
func versionMismatch(applied, expected string) string {
	want := protocol.ParseCodeVersion(expected)
	if len(want) == 0 {
		if applied == expected {
			return ""
		}
		return fmt.Sprintf("applied code version %q, not the expected %q", protocol.OneLine(applied, 200), protocol.OneLine(expected, 200))
	}
	got := protocol.ParseCodeVersion(applied)
	for _, m := range slices.Sorted(maps.Keys(want)) {
		if c := want[m]; !sameCommit(got[m], c) {
			if got[m] == "" {
				return fmt.Sprintf("applied no serfdeploy version of %s, not the expected %s", m, short(c))
			}
			return fmt.Sprintf("applied %s at %s, not the expected %s", m, short(got[m]), short(c))
		}
	}
	return ""
}

func sameCommit(a, b string) bool {
	return a != "" && b != "" && (strings.HasPrefix(a, b) || strings.HasPrefix(b, a))
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

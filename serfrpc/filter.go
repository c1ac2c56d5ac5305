package serfrpc

import (
	"fmt"
	"sort"
	"strings"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// Filter selects members by tag regexps and exact node names, the way serf's
// own CLI does. Both must match when both are given.
type Filter struct {
	Tags  map[string]string // tag name -> regexp matched against the whole value
	Nodes []string          // exact node names
}

// ParseTag parses one `key=regexp` argument as serf's -tag flag takes it.
func ParseTag(s string) (key, re string, err error) {
	key, re, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("tag filter %q must be key=regexp, e.g. segment=qa", s)
	}
	if err := protocol.ValidTagFilter(key, re); err != nil {
		return "", "", err
	}
	return key, re, nil
}

// Anchor makes a regexp match a whole value. Serf's member listing anchors
// tag filters but its query filter does not, so `fqdn=agent-01` would also
// reach agent-010; every filter serfdeploy sends is anchored so that a query
// reaches exactly the members a listing shows.
func Anchor(re string) string {
	return "^(?:" + re + ")$"
}

// AnchoredTags returns the filter's tags anchored for sending to serf.
func (f Filter) AnchoredTags() map[string]string {
	if len(f.Tags) == 0 {
		return nil
	}
	out := make(map[string]string, len(f.Tags))
	for k, v := range f.Tags {
		out[k] = Anchor(v)
	}
	return out
}

// Empty reports whether the filter selects every member.
func (f Filter) Empty() bool { return len(f.Tags) == 0 && len(f.Nodes) == 0 }

// String describes the filter for messages, e.g. "--tag segment=qa --node a".
func (f Filter) String() string {
	if f.Empty() {
		return "(no filter)"
	}
	var parts []string
	keys := make([]string, 0, len(f.Tags))
	for k := range f.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, "--tag "+k+"="+f.Tags[k])
	}
	for _, n := range f.Nodes {
		parts = append(parts, "--node "+n)
	}
	return strings.Join(parts, " ")
}

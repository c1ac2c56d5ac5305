package serfsim

import (
	"fmt"
	"regexp"
)

// memberFilter mirrors AgentIPC.filterMembers (cmd/serf/command/agent/ipc.go):
// serf wraps each tag regexp, the status and the name as "^" + expr + "$"
// (with no group, so `a|b` becomes `^a|b$`), and a member without the tag is
// matched as an empty value.
type memberFilter struct {
	tags   map[string]*regexp.Regexp
	status *regexp.Regexp
	name   *regexp.Regexp
}

func newMemberFilter(tags map[string]string, status, name string) (*memberFilter, error) {
	mf := &memberFilter{tags: map[string]*regexp.Regexp{}}
	for tag, expr := range tags {
		re, err := regexp.Compile(fmt.Sprintf("^%s$", expr))
		if err != nil {
			return nil, fmt.Errorf("Failed to compile regex: %v", err)
		}
		mf.tags[tag] = re
	}
	var err error
	if status != "" {
		if mf.status, err = regexp.Compile(fmt.Sprintf("^%s$", status)); err != nil {
			return nil, fmt.Errorf("Failed to compile regex: %v", err)
		}
	}
	if name != "" {
		if mf.name, err = regexp.Compile(fmt.Sprintf("^%s$", name)); err != nil {
			return nil, fmt.Errorf("Failed to compile regex: %v", err)
		}
	}
	return mf, nil
}

func (mf *memberFilter) match(n *node) bool {
	for tag, re := range mf.tags {
		if !re.MatchString(n.tags[tag]) {
			return false
		}
	}
	if mf.status != nil && !mf.status.MatchString(n.status()) {
		return false
	}
	return mf.name == nil || mf.name.MatchString(n.name)
}

// queryFilter mirrors (*serf.Serf).shouldProcessQuery (serf/query.go): node
// names must match exactly, tag regexps are NOT anchored (regexp.MatchString),
// and a regexp that does not compile makes every node ignore the query. Each
// node would compile the regexps itself; compiling once is the same result.
type queryFilter struct {
	nodes map[string]bool
	tags  map[string]*regexp.Regexp
	bad   bool
}

func newQueryFilter(nodes []string, tags map[string]string) queryFilter {
	qf := queryFilter{tags: map[string]*regexp.Regexp{}}
	if len(nodes) > 0 {
		qf.nodes = make(map[string]bool, len(nodes))
		for _, n := range nodes {
			qf.nodes[n] = true
		}
	}
	for tag, expr := range tags {
		re, err := regexp.Compile(expr)
		if err != nil {
			qf.bad = true
			continue
		}
		qf.tags[tag] = re
	}
	return qf
}

func (qf queryFilter) match(n *node) bool {
	if qf.bad || (qf.nodes != nil && !qf.nodes[n.name]) {
		return false
	}
	for tag, re := range qf.tags {
		if !re.MatchString(n.tags[tag]) {
			return false
		}
	}
	return true
}

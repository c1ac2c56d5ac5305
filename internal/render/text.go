package render

import (
	"fmt"

	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/protocol"
)

// maxText caps one message in a report: a 100 kB Puppet trace would bury
// every other node; the full text stays in the node's Puppet report.
const maxText = 8 << 10

// text cleans a message for a report (see protocol.CleanText) and caps it
// with a visible marker.
func text(s string) string {
	s = protocol.CleanText(s)
	if len(s) <= maxText {
		return s
	}
	return protocol.Truncate(s, maxText) + fmt.Sprintf(" [cut: %d of %d bytes shown]", maxText, len(s))
}

// line is one cleaned, single-line field of at most max bytes.
func line(s string, max int) string { return protocol.OneLine(s, max) }

// joinedLate is what a report says of a node the CLI did not target.
const joinedLate = "(joined late: not in the CLI's target list when it started, reached by the run request)"

// outcomeText is the result's last word: the error that ended the command
// early when there is one, otherwise the outcome the nodes decided.
func outcomeText(res *orchestrate.Result) string {
	if res.Error != "" {
		return fmt.Sprintf("%s (exit %d)", line(res.Error, maxText), res.ExitCode)
	}
	return line(res.Outcome, maxText)
}

// cleanResult returns a deep enough copy of res with every text field
// cleaned, so that JSON consumers get the same text as the other reports
// and the caller's result is left alone.
func cleanResult(res *orchestrate.Result) *orchestrate.Result {
	c := *res
	for _, p := range []*string{&c.ID, &c.Kind, &c.Module, &c.Ref, &c.Environment, &c.Filter,
		&c.StatusSource, &c.Outcome, &c.Error} {
		*p = protocol.CleanText(*p)
	}
	if res.Build != nil {
		b := *res.Build
		b.Tag, b.URL, b.Job = protocol.CleanText(b.Tag), protocol.CleanText(b.URL), protocol.CleanText(b.Job)
		c.Build = &b
	}
	if res.Masters != nil {
		c.Masters = make([]orchestrate.MasterResult, len(res.Masters))
		for i, m := range res.Masters {
			for _, p := range []*string{&m.Node, &m.Phase, &m.Message, &m.Commit} {
				*p = protocol.CleanText(*p)
			}
			c.Masters[i] = m
		}
	}
	if res.Nodes != nil {
		c.Nodes = make([]orchestrate.NodeResult, len(res.Nodes))
		for i, n := range res.Nodes {
			for _, p := range []*string{&n.Node, &n.State, &n.Reason, &n.Message, &n.ConfigVersion, &n.Source} {
				*p = protocol.CleanText(*p)
			}
			if n.ExitCode != nil {
				code := *n.ExitCode
				n.ExitCode = &code
			}
			if n.FailedResources != nil {
				frs := make([]protocol.FailedResource, len(n.FailedResources))
				for j, f := range n.FailedResources {
					frs[j] = protocol.FailedResource{Resource: protocol.CleanText(f.Resource), Message: protocol.CleanText(f.Message)}
				}
				n.FailedResources = frs
			}
			c.Nodes[i] = n
		}
	}
	return &c
}

package main

import (
	"bufio"
	"context"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// The filters on what Puppet knows (MCollective's -F, -C, -S and --nodes):
// filterFlags adds them to every command that takes --tag.

// selectFlags are --nodes, --fact, --class and --select.
func selectFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "nodes", Usage: "only the nodes named in this file, one a line (# comments and blank lines ignored), as exact --node"},
		&cli.GenericFlag{Name: "fact", Value: &repeatable{}, Usage: "only nodes whose Puppet fact matches: name=regexp (whole value; nested facts by dotted name, e.g. os.family=Debian), repeatable"},
		&cli.GenericFlag{Name: "class", Value: &repeatable{}, Usage: "only nodes whose last Puppet catalog had this class (Puppet's classes.txt), repeatable"},
		&cli.StringFlag{Name: "select", Usage: "only nodes matching this expression: and, or, not and ( ) over tag:KEY=REGEXP, fact:NAME=REGEXP and class:NAME"},
	}
}

// selectionFrom joins --fact, --class and --select into one selector
// (all must hold), in its canonical text; "" without any of them.
func selectionFrom(c *cli.Context) (string, error) {
	var parts []*protocol.Selector
	for _, f := range repeated(c, "fact") {
		name, re, ok := strings.Cut(f, "=")
		if !ok {
			return "", usageErrorf("--fact %q must be name=regexp, e.g. os.family=Debian", protocol.Truncate(f, 64))
		}
		term, err := protocol.NewFactTerm(name, re)
		if err != nil {
			return "", usageErrorf("--fact: %w", err)
		}
		parts = append(parts, term)
	}
	for _, name := range repeated(c, "class") {
		term, err := protocol.NewClassTerm(name)
		if err != nil {
			return "", usageErrorf("--class: %w", err)
		}
		parts = append(parts, term)
	}
	if text := c.String("select"); c.IsSet("select") {
		sel, err := protocol.ParseSelector(text)
		if err != nil {
			return "", usageErrorf("--select: %w", err)
		}
		parts = append(parts, sel)
	}
	sel := protocol.AllOf(parts...)
	if sel == nil {
		return "", nil
	}
	return sel.String(), nil
}

// maxNodesFile bounds --nodes FILE: 10,000 names of 253 bytes.
const maxNodesFile = 4 << 20

// nodesFromFile reads --nodes FILE: node names one a line, "#" to the
// end of a line a comment, blank lines ignored, each name checked as
// --node's. A file that names no node is an error: no filter would mean
// the whole fleet.
func nodesFromFile(c *cli.Context) ([]string, error) {
	path := c.String("nodes")
	if !c.IsSet("nodes") {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, usageErrorf("--nodes: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, usageErrorf("--nodes: %w", err)
	}
	if info.Size() > maxNodesFile {
		return nil, usageErrorf("--nodes %s is %d bytes, over %d", path, info.Size(), maxNodesFile)
	}
	var names []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		name, _, _ := strings.Cut(sc.Text(), "#")
		name = strings.TrimSpace(name)
		if name == "" || seen[name] {
			continue
		}
		if err := protocol.ValidNode(name); err != nil {
			return nil, usageErrorf("--nodes %s line %d: %w", path, line, err)
		}
		seen[name] = true
		names = append(names, name)
	}
	if err := sc.Err(); err != nil {
		return nil, usageErrorf("--nodes %s: %w", path, err)
	}
	if len(names) == 0 {
		return nil, usageErrorf("--nodes %s names no node (one a line); with no filter a command would reach the whole fleet", path)
	}
	return names, nil
}

// selected narrows f to the alive nodes the selection matches, asking
// them (members, status, disable, enable); f unchanged without one.
func selected(ctx context.Context, c *cli.Context, client *serfrpc.Client, f serfrpc.Filter, selection string) (serfrpc.Filter, error) {
	if selection == "" {
		return f, nil
	}
	timeout := 5 * time.Second
	if c.IsSet("query-timeout") {
		timeout = c.Duration("query-timeout")
	}
	sel, err := orchestrate.ParseSelection(selection, timeout)
	if err != nil {
		return f, err
	}
	found, err := orchestrate.SelectTargets(ctx, client, f, sel, timeout)
	var e *orchestrate.Error
	if errors.As(err, &e) && e.Code == orchestrate.ExitNoTargets {
		return f, noneMatched{e}
	}
	if err != nil {
		return f, err
	}
	names := make([]string, len(found.Matched))
	for i, m := range found.Matched {
		names[i] = m.Name
	}
	return serfrpc.Filter{Nodes: names}, nil
}

// noneMatched: the selection matched no alive node. Exit 3, as for a
// tag no node has, except for members, which lists none (exit 0).
type noneMatched struct{ err *orchestrate.Error }

func (e noneMatched) Error() string { return e.err.Error() }
func (e noneMatched) Unwrap() error { return e.err }

func noneSelected(err error) bool {
	var none noneMatched
	return errors.As(err, &none)
}

// selectionKey is what the selection adds to a deploy's derived id: the
// same selection, the same id.
func selectionKey(c *cli.Context) []string {
	var key []string
	if sel, err := selectionFrom(c); err == nil && sel != "" {
		key = append(key, "select:"+sel)
	}
	if names, err := nodesFromFile(c); err == nil {
		for _, n := range names {
			key = append(key, "nodes:"+n)
		}
	}
	return key
}

// hasSelection says whether a filter of what Puppet knows was given,
// for commands that refuse to act on the whole fleet.
func hasSelection(c *cli.Context) bool {
	sel, err := selectionFrom(c)
	return err != nil || sel != ""
}

// isSelectFlag names selectFlags, which watch, taking no filter, drops.
func isSelectFlag(name string) bool {
	switch name {
	case "nodes", "fact", "class", "select":
		return true
	}
	return false
}

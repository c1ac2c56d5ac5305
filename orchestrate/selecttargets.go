package orchestrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// Selections on what Puppet knows (--fact, --class, --select): the CLI
// decides what the member list's tags decide, and asks the other alive
// nodes the filters match in one puppet-status query (StatusRequest.
// Select) whether they match. Every node asked answers, so silence is never
// taken for "no": a node that does not answer, or cannot read its facts or
// classes, is named and the command refuses to guess (exit 5), rather than
// deploy to it or leave it out unseen.

// Selection is what resolving a selection found, and what it cost.
type Selection struct {
	Matched []serfrpc.Member
	Asked   int // nodes asked: their tags did not decide
	Queries int // serf queries sent, re-asks included
	Took    time.Duration
}

// How long the CLI waits for nodes that answer "reading facts" (their
// worker's facts command, 60 s at most by default, puppet.facts_timeout),
// asking them again every selectPoll; a node silent selectSilentRounds
// times running did not answer.
const (
	selectPendingWait  = 90 * time.Second
	selectPoll         = 500 * time.Millisecond
	selectSilentRounds = 2
)

// ParseSelection checks a selection as the user gave it (bad input: exit
// 2), including that it fits one serf query to one node of the longest
// name serf allows, as the CLI's agent (its name as long) would send it.
func ParseSelection(text string, queryTimeout time.Duration) (*protocol.Selector, error) {
	sel, err := protocol.ParseSelector(text)
	if err != nil {
		return nil, &Error{Code: ExitUsage, Err: err}
	}
	longest := strings.Repeat("n", 253)
	payload := selectPayload(sel)
	if !protocol.QueryFits(protocol.QueryPuppetStatus, payload, []string{longest}, nil, queryTimeout, longest) {
		return nil, Errorf(ExitUsage, "the selection is %d bytes and does not fit one serf query (%d bytes, with a node's name): shorten it, or narrow with --tag/--node", len(sel.String()), protocol.MaxQuerySize)
	}
	return sel, nil
}

func selectPayload(sel *protocol.Selector) []byte {
	b, _ := json.Marshal(protocol.StatusRequest{Select: sel.String()})
	return b
}

// SelectTargets returns the alive members f matches that sel matches,
// sorted by name: an error names the nodes that could not say (exit 5),
// and no match at all is exit 3.
func SelectTargets(ctx context.Context, rpc RPC, f serfrpc.Filter, sel *protocol.Selector, queryTimeout time.Duration) (*Selection, error) {
	start := time.Now()
	if queryTimeout <= 0 {
		queryTimeout = 5 * time.Second
	}
	members, err := rpc.Members(ctx, f, serfrpc.StatusAlive)
	if err != nil {
		return nil, interruptedOr(ctx, err, "listing the members")
	}
	res := &Selection{}
	byName := map[string]serfrpc.Member{}
	groups := map[string][]string{} // what is left to ask -> whom
	for _, m := range members {
		byName[m.Name] = m
		switch t, rest := sel.Reduce(memberTags(m.Tags)); t {
		case protocol.SelectYes:
			res.Matched = append(res.Matched, m)
		case protocol.SelectUnknown:
			groups[rest.String()] = append(groups[rest.String()], m.Name)
			res.Asked++
		}
	}
	undecided := map[string]string{}
	for _, rest := range slices.Sorted(maps.Keys(groups)) {
		asked := &selectRound{rpc: rpc, timeout: queryTimeout, undecided: undecided}
		asked.payload, _ = json.Marshal(protocol.StatusRequest{Select: rest})
		matched, err := asked.ask(ctx, groups[rest])
		res.Queries += asked.queries
		if err != nil {
			return nil, err
		}
		for _, n := range matched {
			res.Matched = append(res.Matched, byName[n])
		}
	}
	res.Took = time.Since(start)
	if len(undecided) > 0 {
		return nil, Errorf(ExitInfra, "%d node(s) cannot say whether they match %s, so serfdeploy will not guess whether to include them: %s; fix them, or leave them out with --tag or --node",
			len(undecided), sel, undecidedText(undecided))
	}
	if len(res.Matched) == 0 {
		return nil, Errorf(ExitNoTargets, "no alive node matched %s; check the filters with `serfdeploy members`", describeSelection(f, sel))
	}
	sort.Slice(res.Matched, func(i, j int) bool { return res.Matched[i].Name < res.Matched[j].Name })
	return res, nil
}

// selectRound asks nodes one selection until each has said yes, no or
// why it cannot tell, or has been silent selectSilentRounds times.
type selectRound struct {
	rpc       RPC
	payload   []byte
	timeout   time.Duration
	undecided map[string]string // node -> why it could not say
	queries   int
}

func (r *selectRound) ask(ctx context.Context, nodes []string) (matched []string, err error) {
	deadline := time.Now().Add(selectPendingWait)
	silent := map[string]int{}
	for ask := nodes; len(ask) > 0; {
		res, err := r.rpc.Query(ctx, serfrpc.Query{
			Name: protocol.QueryPuppetStatus, Payload: r.payload, Filter: serfrpc.Filter{Nodes: ask},
			Timeout: r.timeout, Expect: ask, Resend: resendQuery,
		})
		if res != nil {
			r.queries += max(res.Sent, 1)
		}
		if err != nil {
			return nil, interruptedOr(ctx, err, "asking the nodes whether they match the selection")
		}
		answers := map[string][]byte{}
		for _, a := range res.Responses {
			answers[a.From] = a.Payload
		}
		var again []string
		pending := false
		for _, n := range ask {
			raw, ok := answers[n]
			if !ok {
				if silent[n]++; silent[n] < selectSilentRounds {
					again = append(again, n)
				} else {
					r.undecided[n] = fmt.Sprintf("no answer within %s, asked %d times", r.timeout, silent[n])
				}
				continue
			}
			var st protocol.Status
			if err := protocol.DecodeAnswerFrom(raw, n, &st); err != nil {
				r.undecided[n] = fmt.Sprintf("unreadable answer %q", protocol.Truncate(string(raw), 80))
				continue
			}
			switch st.Phase {
			case protocol.SelectMatch:
				matched = append(matched, n)
			case protocol.SelectNoMatch:
			case protocol.SelectPending:
				if time.Now().After(deadline) {
					r.undecided[n] = fmt.Sprintf("still reading its facts after %s", selectPendingWait)
				} else {
					again, pending = append(again, n), true
				}
			case protocol.SelectError:
				r.undecided[n] = protocol.OneLine(st.Message, 300)
			default:
				// A node whose serfdeploy predates selections refuses the
				// field ("bad request: ... unknown field").
				r.undecided[n] = "cannot evaluate a selection (serfdeploy too old?): " + protocol.OneLine(st.Message, 200)
			}
		}
		if pending {
			select {
			case <-ctx.Done():
				return nil, interruptedOr(ctx, ctx.Err(), "waiting for the nodes to read their facts")
			case <-time.After(selectPoll):
			}
		}
		ask = again
	}
	return matched, nil
}

// undecidedText names each node and why, the first ten of them.
func undecidedText(undecided map[string]string) string {
	const most = 10
	var parts []string
	for i, n := range slices.Sorted(maps.Keys(undecided)) {
		if i == most {
			parts = append(parts, fmt.Sprintf("and %d more", len(undecided)-most))
			break
		}
		parts = append(parts, n+" ("+undecided[n]+")")
	}
	return strings.Join(parts, ", ")
}

func describeSelection(f serfrpc.Filter, sel *protocol.Selector) string {
	s := "--select '" + sel.String() + "'"
	if !f.Empty() {
		s = f.String() + " " + s
	}
	return s
}

// memberTags is what the CLI knows of a member for a selector: its tags,
// exactly as serf lists them. Facts and classes only the node knows.
type memberTags map[string]string

func (t memberTags) Tag(key string) (string, bool)     { return t[key], true }
func (memberTags) Fact(string) (string, bool, bool)    { return "", false, false }
func (memberTags) Class(string) (has bool, known bool) { return false, false }

// ResolveSelect narrows opts.Filter to the exact names of the nodes
// opts.Select matches (with --tag/--node), so that everything a deploy or
// run sends afterwards (the event, puppetrun, the polls) reaches those
// nodes only. Call it before Deploy, Run or DryRun when Select is set;
// they refuse options whose selection was not resolved. It returns a
// line for the user. For a deploy whose target names do not fit in serf's
// 512-byte event, the masters only install the code and the CLI sends the
// runs itself, to the names, as one batch.
func ResolveSelect(ctx context.Context, rpc RPC, opts *Options, deploy bool) (string, error) {
	if opts.Select == "" {
		return "", nil
	}
	opts.setDefaults()
	sel, err := ParseSelection(opts.Select, opts.QueryTimeout)
	if err != nil {
		return "", err
	}
	found, err := SelectTargets(ctx, rpc, opts.Filter, sel, opts.QueryTimeout)
	if err != nil {
		return "", err
	}
	note := fmt.Sprintf("%s: %d node(s) match (%d asked, %d quer%s, %s)", describeSelection(opts.Filter, sel),
		len(found.Matched), found.Asked, found.Queries, plural(found.Queries, "y", "ies"), found.Took.Round(time.Millisecond))
	opts.Filter, opts.selected = serfrpc.Filter{Nodes: names(found.Matched)}, true
	if deploy && !opts.batched() && !namesFitEvent(opts) {
		opts.Batch = "100%"
		note += fmt.Sprintf("; their %d names do not fit in serf's 512-byte deploy event: the masters only install the code and serfdeploy sends the runs to the nodes by name, as one batch", len(found.Matched))
	}
	return note, nil
}

// namesFitEvent reports whether the deploy event can carry the target
// names (without the build's context, which is dropped first).
func namesFitEvent(opts *Options) bool {
	d := protocol.Deploy{ID: opts.ID, Module: opts.Module, Ref: opts.Ref, Environment: opts.Environment,
		Nodes: opts.Filter.Nodes, PuppetFlags: opts.Puppet, WaitSec: opts.waitSec(), Targets: len(opts.Filter.Nodes)}
	_, err := protocol.EncodeDeploy(&d)
	var tooLarge *protocol.ErrTooLarge
	return !errors.As(err, &tooLarge)
}

func plural(n int, one, more string) string {
	if n == 1 {
		return one
	}
	return more
}

// checkSelect validates Select: its syntax and size (exit 2), and, past
// Check, that ResolveSelect narrowed the filter to what it matches.
func (o *Options) checkSelect() error {
	if o.Select == "" {
		return nil
	}
	if _, err := ParseSelection(o.Select, o.QueryTimeout); err != nil {
		return err
	}
	if !o.selected {
		return Errorf(ExitInfra, "internal error: the selection %q was not resolved to nodes before the deploy", o.Select)
	}
	return nil
}

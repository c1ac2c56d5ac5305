package orchestrate

import (
	"context"
	"fmt"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// Targets resolves the alive members a deploy or run is for. With no filter
// every alive member is a target except the masters; with a filter, every
// alive member it matches, masters included.
func Targets(ctx context.Context, rpc RPC, f serfrpc.Filter, masterTag string) (targets, masters []serfrpc.Member, err error) {
	masterFilter, err := MasterFilter(masterTag)
	if err != nil {
		return nil, nil, err
	}
	masters, err = rpc.Members(ctx, masterFilter, serfrpc.StatusAlive)
	if err != nil {
		return nil, nil, err
	}
	all, err := rpc.Members(ctx, f, serfrpc.StatusAlive)
	if err != nil {
		return nil, nil, err
	}
	isMaster := map[string]bool{}
	for _, m := range masters {
		isMaster[m.Name] = true
	}
	for _, m := range all {
		if f.Empty() && isMaster[m.Name] {
			continue
		}
		targets = append(targets, m)
	}
	return targets, masters, nil
}

// MasterFilter parses --master-tag (key=regexp).
func MasterFilter(masterTag string) (serfrpc.Filter, error) {
	k, v, err := serfrpc.ParseTag(masterTag)
	if err != nil {
		return serfrpc.Filter{}, Errorf(ExitUsage, "--master-tag: %w", err)
	}
	return serfrpc.Filter{Tags: map[string]string{k: v}}, nil
}

// CheckFilter validates the tag regexps before anything is sent.
func CheckFilter(f serfrpc.Filter) error {
	for k, v := range f.Tags {
		if err := protocol.ValidTagFilter(k, v); err != nil {
			return &Error{Code: ExitUsage, Err: err}
		}
	}
	return nil
}

func names(ms []serfrpc.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

func noTargets(f serfrpc.Filter) error {
	return Errorf(ExitNoTargets, "no alive node matched %s; check the filters with `serfdeploy members`", describe(f))
}

func describe(f serfrpc.Filter) string {
	if f.Empty() {
		return "(every non-master node)"
	}
	// A long list by name (--nodes FILE, a selection resolved to names)
	// is described by its first names and its size: its lines must stay
	// readable, and the names are in the result's nodes anyway.
	const most = 5
	if len(f.Nodes) > 2*most {
		short := f
		short.Nodes = f.Nodes[:most]
		return fmt.Sprintf("%s and %d more nodes by name", short.String(), len(f.Nodes)-most)
	}
	return fmt.Sprint(f.String())
}

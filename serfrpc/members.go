package serfrpc

import (
	"context"
	"sort"

	"github.com/hashicorp/serf/client"
)

// Member statuses as serf reports them.
const (
	StatusAlive   = "alive"
	StatusFailed  = "failed"
	StatusLeft    = "left"
	StatusLeaving = "leaving"
)

// Member is one node of the cluster.
type Member struct {
	Name   string            `json:"name"`
	Addr   string            `json:"addr"`
	Status string            `json:"status"`
	Tags   map[string]string `json:"tags"`
}

// Members lists the members matching f and, when status is not empty, in that
// serf status. The result is sorted by name.
func (c *Client) Members(ctx context.Context, f Filter, status string) ([]Member, error) {
	var raw []client.Member
	err := c.call(ctx, func() error {
		var err error
		raw, err = c.rpc.MembersFiltered(f.AnchoredTags(), status, "")
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Member, 0, len(raw))
	// A set, not a scan of f.Nodes for every member: a poll of 10,000
	// nodes by name would compare 10^8 strings.
	var wanted map[string]bool
	if len(f.Nodes) > 0 {
		wanted = make(map[string]bool, len(f.Nodes))
		for _, n := range f.Nodes {
			wanted[n] = true
		}
	}
	for _, m := range raw {
		if wanted != nil && !wanted[m.Name] {
			continue
		}
		tags := m.Tags
		if tags == nil {
			tags = map[string]string{}
		}
		out = append(out, Member{
			Name:   m.Name,
			Addr:   joinHostPort(m.Addr.String(), m.Port),
			Status: m.Status,
			Tags:   tags,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

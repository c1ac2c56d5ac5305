package serfrpc

import (
	"context"
	"time"

	"github.com/hashicorp/serf/client"
)

// Query describes one serf query.
type Query struct {
	Name    string
	Payload []byte
	Filter  Filter
	Timeout time.Duration // serf's query timeout; 0 lets serf choose
	// Expect, when not empty, names the nodes whose responses end the query
	// early: serf's own `serf query` always waits out its timeout, which would
	// make every poll as slow as the slowest possible answer.
	Expect []string
	// OnResponse, if set, is called for each response as it arrives.
	OnResponse func(Response)
	// Resend, when set with Expect, sends the query again to the expected
	// nodes that have not answered after this long, until Timeout. Serf
	// gossips a query to a few random nodes a few times; in a cluster
	// larger than its fan-out a node can miss it (measured here: one of five
	// loopback agents, now and then), and a query has no anti-entropy.
	// Only for queries whose handlers are idempotent.
	Resend time.Duration
}

// Response is one node's answer.
type Response struct {
	From    string
	Payload []byte
}

// QueryResult is what a query collected.
type QueryResult struct {
	Acks      []string   // nodes that received the query (matched the filter)
	Responses []Response // answers, first one per node
	Complete  bool       // every expected node answered before the timeout
}

// Responded reports whether node answered.
func (r *QueryResult) Responded(node string) bool {
	for _, resp := range r.Responses {
		if resp.From == node {
			return true
		}
	}
	return false
}

// Query runs a query and collects acks and responses until serf ends it, every
// expected node has answered, or ctx ends (then it returns ctx's error with
// what it had collected).
//
// The serf client sends acks and responses without blocking and drops what
// does not fit, so the channels are sized for every member to answer.
func (c *Client) Query(ctx context.Context, q Query) (*QueryResult, error) {
	if q.Resend <= 0 || len(q.Expect) == 0 || q.Timeout <= q.Resend {
		return c.query(ctx, q)
	}
	deadline := time.Now().Add(q.Timeout)
	total := &QueryResult{}
	seen := map[string]bool{}
	round := q
	for {
		round.Timeout = q.Resend
		if left := time.Until(deadline); left < round.Timeout {
			round.Timeout = left
		}
		res, err := c.query(ctx, round)
		if res != nil {
			total.Acks = append(total.Acks, res.Acks...)
			for _, r := range res.Responses {
				if !seen[r.From] {
					seen[r.From] = true
					total.Responses = append(total.Responses, r)
				}
			}
		}
		if err != nil {
			return total, err
		}
		var missing []string
		for _, n := range q.Expect {
			if !seen[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			total.Complete = true
			return total, nil
		}
		if time.Until(deadline) < 100*time.Millisecond {
			return total, nil
		}
		// Ask again only those still silent; the tag filter still applies.
		round.Expect = missing
		round.Filter = Filter{Tags: q.Filter.Tags, Nodes: missing}
	}
}

// query runs one serf query.
func (c *Client) query(ctx context.Context, q Query) (*QueryResult, error) {
	size, err := c.memberCount(ctx)
	if err != nil {
		return nil, err
	}
	size = 2*size + len(q.Expect) + 16
	acks := make(chan string, size)
	resps := make(chan client.NodeResponse, size)
	err = c.call(ctx, func() error {
		return c.rpc.Query(&client.QueryParam{
			FilterNodes: q.Filter.Nodes,
			FilterTags:  q.Filter.AnchoredTags(),
			RequestAck:  true,
			Timeout:     q.Timeout,
			Name:        q.Name,
			Payload:     q.Payload,
			AckCh:       acks,
			RespCh:      resps,
		})
	})
	if err != nil {
		return nil, err
	}

	waiting := make(map[string]bool, len(q.Expect))
	for _, n := range q.Expect {
		waiting[n] = true
	}
	res := &QueryResult{}
	seen := map[string]bool{}
	for acks != nil || resps != nil {
		select {
		case from, ok := <-acks:
			if !ok {
				acks = nil
				continue
			}
			if from != "" { // the client emits empty records at the end of a stream
				res.Acks = append(res.Acks, from)
			}
		case r, ok := <-resps:
			if !ok {
				resps = nil
				continue
			}
			if r.From == "" || seen[r.From] {
				continue
			}
			seen[r.From] = true
			resp := Response{From: r.From, Payload: r.Payload}
			res.Responses = append(res.Responses, resp)
			if q.OnResponse != nil {
				q.OnResponse(resp)
			}
			delete(waiting, r.From)
			if len(q.Expect) > 0 && len(waiting) == 0 {
				res.Complete = true
				return res, nil
			}
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	res.Complete = len(q.Expect) > 0 && len(waiting) == 0
	return res, nil
}

// memberCount sizes the query channels.
func (c *Client) memberCount(ctx context.Context) (int, error) {
	var n int
	err := c.call(ctx, func() error {
		ms, err := c.rpc.Members()
		n = len(ms)
		return err
	})
	return n, err
}

package serfrpc

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/serf/client"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// Query describes one serf query.
type Query struct {
	Name    string
	Payload []byte
	Filter  Filter
	Timeout time.Duration // serf's query timeout; default 5s
	// Expect, when not empty, names the nodes whose responses end the query
	// early: serf's own `serf query` always waits out its timeout, which would
	// make every poll as slow as the slowest possible answer.
	Expect []string
	// OnResponse, if set, is called for each response as it arrives.
	OnResponse func(Response)
	// Resend, when set with Expect, asks again the expected nodes that have
	// neither acknowledged nor answered after this long, then after twice as
	// long, and so on until Timeout. Serf gossips a query to a few random
	// nodes a few times; in a cluster larger than its fan-out a node can
	// miss it (measured here: one of five loopback agents, now and then), and
	// a query has no anti-entropy. A node that acknowledged the query has it
	// and is only slow (its handler queued behind others): it is not asked
	// again, and the first query stays open so its late answer still
	// counts. Only for queries whose handlers are idempotent.
	Resend time.Duration
	// Patience, when set with Expect, ends the query early once this long
	// has passed and every expected node that acknowledged it has answered:
	// the rest did not receive it (dead, or the gossip missed them) and
	// cannot hold a poll hostage until Timeout.
	Patience time.Duration
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
	Sent      int        // serf queries sent: one per chunk of names, per round
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

const defaultQueryTimeout = 5 * time.Second

// record is an ack, a response or the end of one serf query, merged from
// the queries one Query sends.
type record struct {
	kind    int
	from    string
	payload []byte
}

const (
	recAck = iota
	recResponse
	recDone
)

// Query runs a query and collects acks and responses until serf ends it, every
// expected node has answered, or ctx ends (then it returns ctx's error with
// what it had collected).
//
// A node filter too long for serf's 1024-byte query limit is split into
// several queries that each fit, so no list of targets is ever too long.
func (c *Client) Query(ctx context.Context, q Query) (*QueryResult, error) {
	if q.Timeout <= 0 {
		q.Timeout = defaultQueryTimeout
	}
	ctx, cancel := context.WithCancel(ctx)
	// Cancelling switches the forwarders to draining: serf keeps sending a
	// query's records until its timeout, and a full channel makes the serf
	// client log "Dropping query response" on the user's console.
	defer cancel()
	merged := make(chan record, 256)
	deadline := time.Now().Add(q.Timeout)

	res := &QueryResult{}
	open, err := c.send(ctx, q, q.Filter.Nodes, q.Timeout, merged)
	res.Sent += open
	if err != nil {
		return nil, err
	}

	waiting := make(map[string]bool, len(q.Expect))
	for _, n := range q.Expect {
		waiting[n] = true
	}
	acked := map[string]bool{}
	answered := map[string]bool{}

	// settled: patience has run out and every node that has the query
	// answered.
	var patience <-chan time.Time
	if q.Patience > 0 && len(q.Expect) > 0 {
		patience = time.After(q.Patience)
	}
	patienceOver := false
	settled := func() bool {
		if !patienceOver {
			return false
		}
		for n := range waiting {
			if acked[n] {
				return false
			}
		}
		return true
	}

	var resend <-chan time.Time
	interval := q.Resend
	if q.Resend > 0 && len(q.Expect) > 0 {
		// A large fleet answers over a longer time on its own.
		interval += time.Duration(len(q.Expect)/100) * q.Resend
		resend = time.After(interval)
	}
	for open > 0 {
		select {
		case r := <-merged:
			switch r.kind {
			case recDone:
				open--
			case recAck:
				if !acked[r.from] {
					acked[r.from] = true
					res.Acks = append(res.Acks, r.from)
				}
			case recResponse:
				if answered[r.from] {
					continue
				}
				answered[r.from] = true
				resp := Response{From: r.from, Payload: r.payload}
				res.Responses = append(res.Responses, resp)
				if q.OnResponse != nil {
					q.OnResponse(resp)
				}
				delete(waiting, r.from)
				if len(q.Expect) > 0 && len(waiting) == 0 {
					res.Complete = true
					return res, nil
				}
				if settled() {
					return res, nil
				}
			}
		case <-patience:
			patienceOver = true
			if settled() {
				return res, nil
			}
		case <-resend:
			resend = nil
			left := time.Until(deadline)
			var missing []string
			for _, n := range q.Expect {
				if waiting[n] && !acked[n] {
					missing = append(missing, n)
				}
			}
			if len(missing) == 0 || left < 200*time.Millisecond {
				continue
			}
			n, err := c.send(ctx, q, missing, left, merged)
			open += n
			res.Sent += n
			if err != nil {
				return res, err
			}
			interval *= 2
			resend = time.After(interval)
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	res.Complete = len(q.Expect) > 0 && len(waiting) == 0
	return res, nil
}

// send fires the query at nodes (all of q's filter when nodes is empty),
// split into as many serf queries as the names need, and forwards their
// records to merged. It returns how many queries it sent.
func (c *Client) send(ctx context.Context, q Query, nodes []string, timeout time.Duration, merged chan<- record) (int, error) {
	tags := q.Filter.AnchoredTags()
	chunks, err := c.chunk(q, nodes, tags, timeout)
	if err != nil {
		return 0, err
	}
	sent := 0
	for _, chunk := range chunks {
		size := len(chunk) + 16
		if len(chunk) == 0 {
			if size, err = c.memberCount(ctx); err != nil {
				return sent, err
			}
			size += 16
		}
		acks := make(chan string, size)
		resps := make(chan client.NodeResponse, size)
		err := c.call(ctx, func() error {
			return c.rpc.Query(&client.QueryParam{
				FilterNodes: chunk, FilterTags: tags, RequestAck: true,
				Timeout: timeout, Name: q.Name, Payload: q.Payload,
				AckCh: acks, RespCh: resps,
			})
		})
		if err != nil {
			return sent, err
		}
		sent++
		go forward(ctx, acks, resps, merged)
	}
	return sent, nil
}

// chunk splits nodes into lists that each make a query within serf's limit.
// An empty nodes gives one query with no node filter.
func (c *Client) chunk(q Query, nodes []string, tags map[string]string, timeout time.Duration) ([][]string, error) {
	fits := func(names []string) bool {
		return protocol.QueryFits(q.Name, q.Payload, names, tags, timeout, c.self)
	}
	if len(nodes) == 0 {
		if !fits(nil) {
			return nil, fmt.Errorf("query %s is %d bytes before any node filter, over serf's limit of %d", q.Name,
				protocol.QuerySize(q.Name, q.Payload, nil, tags, timeout, c.self), protocol.MaxQuerySize)
		}
		return [][]string{nil}, nil
	}
	var chunks [][]string
	var cur []string
	for _, n := range nodes {
		if fits(append(cur, n)) {
			cur = append(cur, n)
			continue
		}
		if len(cur) == 0 {
			return nil, fmt.Errorf("query %s to node %q alone is over serf's limit of %d bytes", q.Name, n, protocol.MaxQuerySize)
		}
		chunks = append(chunks, cur)
		cur = []string{n}
	}
	return append(chunks, cur), nil
}

// forward passes one serf query's records on until serf closes it; once
// ctx ends it only drains them.
func forward(ctx context.Context, acks <-chan string, resps <-chan client.NodeResponse, merged chan<- record) {
	pass := func(r record) {
		select {
		case merged <- r:
		case <-ctx.Done():
		}
	}
	for acks != nil || resps != nil {
		select {
		case from, ok := <-acks:
			if !ok {
				acks = nil
			} else if from != "" { // the client emits empty records at the end of a stream
				pass(record{kind: recAck, from: from})
			}
		case r, ok := <-resps:
			if !ok {
				resps = nil
			} else if r.From != "" {
				pass(record{kind: recResponse, from: r.From, payload: r.Payload})
			}
		}
	}
	pass(record{kind: recDone})
}

// memberCount sizes the channels of a query with no node filter.
func (c *Client) memberCount(ctx context.Context) (int, error) {
	var n int
	err := c.call(ctx, func() error {
		ms, err := c.rpc.Members()
		n = len(ms)
		return err
	})
	return n, err
}

package serfrpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/testkit/serfcluster"
)

func TestParseTagAndAnchor(t *testing.T) {
	if _, _, err := ParseTag("segment"); err == nil {
		t.Error("a tag without = was accepted")
	}
	if _, _, err := ParseTag("segment=(qa"); err == nil {
		t.Error("a regexp that does not compile was accepted")
	}
	k, re, err := ParseTag("fqdn=agent-01=x")
	if err != nil || k != "fqdn" || re != "agent-01=x" {
		t.Errorf("fqdn=agent-01=x: %q %q %v", k, re, err)
	}
	f := Filter{Tags: map[string]string{"fqdn": "agent-01|agent-02"}}
	if got := f.AnchoredTags()["fqdn"]; got != "^(?:agent-01|agent-02)$" {
		t.Errorf("anchored %q", got)
	}
}

func connectTo(t *testing.T, addr, key string) *Client {
	t.Helper()
	c, err := Connect(context.Background(), Config{Addr: addr, AuthKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestQueryEndsWhenAllAnswered proves the reason this package exists beside
// `serf query`: with five real agents answering, the query returns as soon
// as the last expected answer is in, not at the timeout.
func TestQueryEndsWhenAllAnswered(t *testing.T) {
	var specs []serfcluster.NodeSpec
	for _, n := range []string{"agent-01", "agent-010", "agent-02", "agent-03", "agent-04"} {
		seg := "qa"
		if n == "agent-04" {
			seg = "prod"
		}
		specs = append(specs, serfcluster.NodeSpec{Name: n, Tags: map[string]string{"fqdn": n, "segment": seg}})
	}
	cl := serfcluster.Start(t, serfcluster.Options{Handler: "echo pong-{name}"}, specs...)
	c := connectTo(t, cl.Nodes()[0].RPCAddr, "")
	ctx := context.Background()

	all := []string{"agent-01", "agent-010", "agent-02", "agent-03", "agent-04"}
	timeout := 15 * time.Second
	start := time.Now()
	res, err := c.Query(ctx, Query{Name: "ping", Timeout: timeout, Expect: all, Resend: time.Second})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res.Responses {
		if want := "pong-" + r.From; strings.TrimSpace(string(r.Payload)) != want {
			t.Fatalf("%s answered %q", r.From, r.Payload)
		}
		got = append(got, r.From)
	}
	sort.Strings(got)
	if !res.Complete || strings.Join(got, ",") != strings.Join(all, ",") {
		t.Fatalf("complete %v responses %v", res.Complete, got)
	}
	t.Logf("5 answers in %s with a %s query timeout (serf query would wait it out)", took.Round(time.Millisecond), timeout)

	// An anchored filter reaches exactly what the listing shows.
	f := Filter{Tags: map[string]string{"fqdn": "agent-01"}}
	members, err := c.Members(ctx, f, StatusAlive)
	if err != nil || len(members) != 1 {
		t.Fatalf("members %v %v", members, err)
	}
	res, err = c.Query(ctx, Query{Name: "ping", Filter: f, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Responses) != 1 || res.Responses[0].From != "agent-01" {
		t.Fatalf("fqdn=agent-01 reached %+v (agent-010 must not answer)", res.Responses)
	}
	// Gossip can miss a node now and then: ask again whoever did not ack.
	res, err = c.Query(ctx, Query{Name: "ping", Filter: Filter{Tags: map[string]string{"segment": "qa"}, Nodes: []string{"agent-02", "agent-04"}},
		Timeout: 5 * time.Second, Expect: []string{"agent-02"}, Resend: time.Second})
	if err != nil || len(res.Responses) != 1 || res.Responses[0].From != "agent-02" {
		t.Fatalf("tag and node filters together: %+v %v", res, err)
	}

	// A context that ends stops the call at once.
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = c.Query(cctx, Query{Name: "ping", Timeout: 10 * time.Second, Expect: []string{"nobody"}})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("ctx end: %v after %s", err, time.Since(start))
	}
}

func TestConnectErrors(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	_, err := Connect(context.Background(), Config{Addr: dead})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), dead) {
		t.Fatalf("dead agent: %v", err)
	}
	cl := serfcluster.Start(t, serfcluster.Options{RPCAuth: "k"}, serfcluster.NodeSpec{Name: "a"})
	_, err = Connect(context.Background(), Config{Addr: cl.Nodes()[0].RPCAddr, AuthKey: "wrong"})
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong key: %v", err)
	}
	c := connectTo(t, cl.Nodes()[0].RPCAddr, "k")
	if ms, err := c.Members(context.Background(), Filter{}, ""); err != nil || len(ms) != 1 {
		t.Fatalf("right key: %v %v", ms, err)
	}
	cl.Nodes()[0].Kill()
	if _, err := c.Members(context.Background(), Filter{}, ""); !errors.Is(err, ErrGone) && !errors.Is(err, ErrUnreachable) {
		t.Fatalf("agent killed mid-session: %v", err)
	}
}

// TestQueryToMoreNamesThanFitInOneQuery: a node filter that makes a query
// longer than serf's 1024 bytes (here six 180-character names; in a fleet,
// about 80 short ones) is split into queries that fit, and every node
// answers. Before, the agent refused the whole query ("query exceeds limit
// of 1024 bytes") and a deploy to 100 agents exited 2.
func TestQueryToMoreNamesThanFitInOneQuery(t *testing.T) {
	var specs []serfcluster.NodeSpec
	var all []string
	for i := 0; i < 6; i++ {
		name := fmt.Sprintf("agent-%d-%s", i, strings.Repeat("x", 170))
		all = append(all, name)
		specs = append(specs, serfcluster.NodeSpec{Name: name})
	}
	cl := serfcluster.Start(t, serfcluster.Options{Handler: "echo pong"}, specs...)
	c := connectTo(t, cl.Nodes()[0].RPCAddr, "")
	res, err := c.Query(context.Background(), Query{
		Name: "ping", Payload: []byte(`{"id":"x"}`), Filter: Filter{Nodes: all},
		Timeout: 15 * time.Second, Expect: all, Resend: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Complete || len(res.Responses) != len(all) {
		t.Fatalf("complete %v, %d of %d answers", res.Complete, len(res.Responses), len(all))
	}
	if res.Sent < 2 {
		t.Fatalf("%d query sent for %d long names: the filter was not split", res.Sent, len(all))
	}
}

// TestSlowNodeIsNotAskedAgain: a node that acknowledged a query but answers
// late (its handler queued behind others) keeps its first query open and is
// not sent the query again; its late answer counts. Before, each resend
// round closed the query after the resend interval, the late answer was
// dropped ("reply for non-running query" in the agent's log) and the node
// was asked again every interval.
func TestSlowNodeIsNotAskedAgain(t *testing.T) {
	cl := serfcluster.Start(t, serfcluster.Options{Handler: "sh -c 'sleep 2; echo pong'"},
		serfcluster.NodeSpec{Name: "a"}, serfcluster.NodeSpec{Name: "slow"})
	c := connectTo(t, cl.Nodes()[0].RPCAddr, "")
	res, err := c.Query(context.Background(), Query{
		Name: "ping", Filter: Filter{Nodes: []string{"slow"}},
		Timeout: 10 * time.Second, Expect: []string{"slow"}, Resend: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Complete || !res.Responded("slow") {
		t.Fatalf("the slow node's answer was lost: %+v", res)
	}
	if res.Sent != 1 {
		t.Fatalf("%d queries sent to a node that had acknowledged the first", res.Sent)
	}
}

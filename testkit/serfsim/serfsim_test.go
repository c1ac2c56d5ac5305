package serfsim

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/serf/client"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/testkit/serfcluster"
)

// start serves a fleet for one test and returns a connected serf client.
func start(t *testing.T, cfg Config, authKey string) (*Fleet, *Server) {
	t.Helper()
	f := NewFleet(cfg)
	s, err := Listen("127.0.0.1:0", f, authKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		f.Close()
	})
	return f, s
}

func dial(t *testing.T, addr, key string) *client.RPCClient {
	t.Helper()
	c, err := client.ClientFromConfig(&client.Config{Addr: addr, AuthKey: key, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func names(ms []client.Member) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func TestHandshakeAndAuth(t *testing.T) {
	_, s := start(t, Config{Agents: 3}, "sekrit")
	if _, err := client.ClientFromConfig(&client.Config{Addr: s.Addr(), AuthKey: "wrong"}); err == nil || err.Error() != "Invalid authentication token" {
		t.Fatalf("wrong key: %v", err)
	}
	noKey := dial(t, s.Addr(), "")
	if _, err := noKey.Members(); err == nil || err.Error() != "Authentication required" {
		t.Fatalf("no key: %v", err)
	}
	c := dial(t, s.Addr(), "sekrit")
	ms, err := c.Members()
	if err != nil {
		t.Fatal(err)
	}
	if got := names(ms); got != "agent-0001,agent-0002,agent-0003,master-01" {
		t.Fatalf("members %s", got)
	}
	m := ms[0]
	if m.Status != "alive" || m.Port != memberPort || len(m.Addr) != 4 || m.Tags["fqdn"] == "" {
		t.Fatalf("member %+v", m)
	}
}

// TestMembersFiltered: serf anchors members-filtered regexps ("^" + re +
// "$"), so segment=qa does not list qa-east, and the status and name
// filters are regexps too.
func TestMembersFiltered(t *testing.T) {
	_, s := start(t, Config{Agents: 4, Segments: []string{"qa", "qa-east"}}, "")
	c := dial(t, s.Addr(), "")
	for _, tc := range []struct {
		tags         map[string]string
		status, name string
		want         string
	}{
		{map[string]string{"segment": "qa"}, "", "", "agent-0001,agent-0003"},
		{map[string]string{"segment": "qa.*"}, "alive", "", "agent-0001,agent-0002,agent-0003,agent-0004"},
		{map[string]string{"role": "puppetmaster"}, "alive", "", "master-01"},
		{nil, "", "agent-000[12]", "agent-0001,agent-0002"},
		{nil, "failed", "", ""},
		// serf does not group the expression: ^qa|east$ matches qa-east.
		{map[string]string{"segment": "qa|east"}, "", "", "agent-0001,agent-0002,agent-0003,agent-0004"},
	} {
		ms, err := c.MembersFiltered(tc.tags, tc.status, tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(ms); got != tc.want {
			t.Errorf("%v %q %q: got %s, want %s", tc.tags, tc.status, tc.name, got, tc.want)
		}
	}
}

type queryResult struct {
	acks, resps []string
	payloads    map[string][]byte
	took        time.Duration
}

func runQuery(t *testing.T, c *client.RPCClient, p client.QueryParam) (*queryResult, error) {
	t.Helper()
	acks := make(chan string, 100)
	resps := make(chan client.NodeResponse, 100)
	p.AckCh, p.RespCh = acks, resps
	start := time.Now()
	if err := c.Query(&p); err != nil {
		return nil, err
	}
	res := &queryResult{payloads: map[string][]byte{}}
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeout+5*time.Second)
	defer cancel()
	for acks != nil || resps != nil {
		select {
		case a, ok := <-acks:
			if !ok {
				acks = nil
			} else if a != "" {
				res.acks = append(res.acks, a)
			}
		case r, ok := <-resps:
			if !ok {
				resps = nil
			} else if r.From != "" {
				res.resps = append(res.resps, r.From)
				res.payloads[r.From] = r.Payload
			}
		case <-ctx.Done():
			t.Fatal("the query never ended")
		}
	}
	res.took = time.Since(start)
	sort.Strings(res.acks)
	sort.Strings(res.resps)
	return res, nil
}

// TestQuery: a query with FilterNodes reaches exactly those members, each
// acks and answers, and the stream ends at the query's timeout.
func TestQuery(t *testing.T) {
	_, s := start(t, Config{Agents: 20, Segments: []string{"qa", "qa-east"}}, "")
	c := dial(t, s.Addr(), "")
	payload, _ := json.Marshal(protocol.StatusRequest{ID: "d1"})
	timeout := 700 * time.Millisecond
	res, err := runQuery(t, c, client.QueryParam{
		Name: protocol.QueryPuppetStatus, Payload: payload, RequestAck: true, Timeout: timeout,
		FilterNodes: []string{"agent-0003", "agent-0007", "master-01"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "agent-0003,agent-0007,master-01"
	if strings.Join(res.acks, ",") != want || strings.Join(res.resps, ",") != want {
		t.Fatalf("acks %v responses %v, want %s", res.acks, res.resps, want)
	}
	if res.took < timeout || res.took > timeout+time.Second {
		t.Fatalf("the query ended after %s, its timeout is %s", res.took, timeout)
	}
	var st protocol.Status
	if err := json.Unmarshal(res.payloads["agent-0007"], &st); err != nil || st.Node != "agent-0007" || st.Phase != protocol.PhaseUnknown || st.ID != "d1" {
		t.Fatalf("answer %s: %v", res.payloads["agent-0007"], err)
	}
	if err := json.Unmarshal(res.payloads["master-01"], &st); err != nil || st.Role != roleMaster || st.Sync != protocol.PhaseUnknown {
		t.Fatalf("master's answer %s: %v", res.payloads["master-01"], err)
	}

	// Serf does not anchor query tag filters: segment=qa reaches qa-east.
	res, err = runQuery(t, c, client.QueryParam{
		Name: protocol.QueryPuppetStatus, Payload: payload, Timeout: 300 * time.Millisecond,
		FilterTags: map[string]string{"segment": "qa"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.resps) != 20 || len(res.acks) != 0 {
		t.Fatalf("unanchored tag filter: %d responses (want 20), %d acks (none asked)", len(res.resps), len(res.acks))
	}
	// A query no handler answers gets acks only.
	res, err = runQuery(t, c, client.QueryParam{Name: "nothing", RequestAck: true, Timeout: 200 * time.Millisecond, FilterTags: map[string]string{"segment": "^qa$"}})
	if err != nil || len(res.acks) != 10 || len(res.resps) != 0 {
		t.Fatalf("unhandled query: %+v %v", res, err)
	}
}

func TestQueryLost(t *testing.T) {
	f, s := start(t, Config{Agents: 200, LossRate: 0.5}, "")
	c := dial(t, s.Addr(), "")
	res, err := runQuery(t, c, client.QueryParam{Name: protocol.QueryPuppetStatus, RequestAck: true, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	lost := f.Stats().DeliveriesLost
	if lost < 50 || lost > 150 || len(res.resps)+lost != 201 || len(res.acks) != len(res.resps) {
		t.Fatalf("lost %d, %d responses, %d acks of 201 members", lost, len(res.resps), len(res.acks))
	}
}

// TestLimits: serf's refusals, with serf's texts.
func TestLimits(t *testing.T) {
	f, s := start(t, Config{Agents: 300}, "")
	c := dial(t, s.Addr(), "")
	var nodes []string
	for i := 1; i <= 300; i++ {
		nodes = append(nodes, fmt.Sprintf("agent-%04d", i))
	}
	err := c.Query(&client.QueryParam{Name: protocol.QueryPuppetStatus, FilterNodes: nodes, Timeout: time.Second})
	if err == nil || err.Error() != "query exceeds limit of 1024 bytes" {
		t.Fatalf("a query naming 300 nodes: %v", err)
	}
	if _, err := runQuery(t, c, client.QueryParam{Name: protocol.QueryPuppetStatus, FilterNodes: nodes[:50], Timeout: 100 * time.Millisecond}); err != nil {
		t.Fatalf("a query naming 50 nodes: %v", err)
	}

	err = c.UserEvent("deploy", []byte(strings.Repeat("x", 507)), false)
	if err == nil || err.Error() != "user event exceeds configured limit of 512 bytes before encoding" {
		t.Fatalf("507-byte payload: %v", err)
	}
	// Name and payload fit in 512, the encoded message does not.
	err = c.UserEvent("deploy", []byte(strings.Repeat("x", 490)), false)
	if err == nil || err.Error() != "encoded user event exceeds configured limit of 512 bytes after encoding" {
		t.Fatalf("490-byte payload: %v", err)
	}
	if err := c.UserEvent("deploy", []byte(strings.Repeat("x", 400)), false); err != nil {
		t.Fatalf("400-byte payload: %v", err)
	}
	st := f.Stats()
	if st.QueriesRefused != 1 || st.Queries != 1 || st.EventsRefused != 2 || st.Events != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The protocol package sizes messages at their worst case: anything it
	// lets through, the simulated agent takes.
	for k := 1; k < 300; k++ {
		q := &protocol.SerfQuery{LTime: 1, ID: 1 << 30, Addr: f.local.addr, Port: memberPort, SourceNode: f.local.name, Timeout: 5 * time.Second, Name: protocol.QueryPuppetStatus, Payload: []byte(`{"id":"20260101T000000Z-abcdef"}`)}
		ours, _ := querySize(q, nodes[:k], nil, true)
		theirs := protocol.QuerySize(q.Name, q.Payload, nodes[:k], nil, q.Timeout, q.SourceNode)
		if ours > theirs {
			t.Fatalf("%d nodes: serf sizes the query %d bytes, protocol.QuerySize %d", k, ours, theirs)
		}
	}
}

// TestStream: a stream subscriber receives user events fired through RPC,
// and the nodes' completion events when FireDone is set.
func TestStream(t *testing.T) {
	_, s := start(t, Config{Agents: 5, TimeScale: 0.01, FireDone: true}, "")
	c := dial(t, s.Addr(), "")
	events := make(chan map[string]any, 16)
	h, err := c.Stream("user:hello,user:"+DoneEvent, events)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stream("bogus", make(chan map[string]any, 1)); err == nil || err.Error() != "Invalid event filter" {
		t.Fatalf("bad filter: %v", err)
	}
	if err := c.UserEvent("other", nil, false); err != nil {
		t.Fatal(err)
	}
	if err := c.UserEvent("hello", []byte("world"), false); err != nil {
		t.Fatal(err)
	}
	ev := <-events
	if ev["Event"] != "user" || ev["Name"] != "hello" || string(ev["Payload"].([]byte)) != "world" {
		t.Fatalf("event %v", ev)
	}

	d, _ := protocol.EncodeDeploy(&protocol.Deploy{ID: "d2", Module: "motd", Ref: "v1", SkipMasters: true})
	if err := c.UserEvent(protocol.EventDeploy, d, false); err != nil {
		t.Fatal(err)
	}
	done := map[string]string{}
	timeout := time.After(10 * time.Second)
	for len(done) < 5 {
		select {
		case ev := <-events:
			var st protocol.Status
			if err := json.Unmarshal(ev["Payload"].([]byte), &st); err != nil || ev["Name"] != DoneEvent {
				t.Fatalf("event %v: %v", ev, err)
			}
			done[st.Node] = st.Phase
		case <-timeout:
			t.Fatalf("completion events: %v", done)
		}
	}
	for n, phase := range done {
		if phase != protocol.PhaseFinished {
			t.Errorf("%s: %s", n, phase)
		}
	}
	if err := c.Stop(h); err != nil {
		t.Fatal(err)
	}
}

// TestDeploy plays a deploy through the emulated handlers: the master syncs
// and triggers, agents run and report, failures at the configured rate.
func TestDeploy(t *testing.T) {
	f, s := start(t, Config{Masters: 2, Agents: 40, TimeScale: 0.02, FailRate: 0.25, Seed: 7}, "")
	c := dial(t, s.Addr(), "")
	d, _ := protocol.EncodeDeploy(&protocol.Deploy{ID: "d3", Module: "motd", Ref: "v1", SkipMasters: true})
	if err := c.UserEvent(protocol.EventDeploy, d, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.WaitTriggered(ctx, "d3"); err != nil {
		t.Fatal(err)
	}
	runs := f.Runs("d3")
	var last time.Time
	for _, r := range runs {
		if r.End.After(last) {
			last = r.End
		}
	}
	time.Sleep(time.Until(last))
	payload, _ := json.Marshal(protocol.StatusRequest{ID: "d3"})
	res, err := runQuery(t, c, client.QueryParam{Name: protocol.QueryPuppetStatus, Payload: payload, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	phases := map[string]int{}
	for node, b := range res.payloads {
		var st protocol.Status
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		phases[st.Phase]++
		if strings.HasPrefix(node, "master") {
			if st.Sync != protocol.PhaseTriggered || st.Commit == "" || st.Phase != protocol.PhaseSkipped {
				t.Fatalf("master %s", b)
			}
			continue
		}
		if st.Exit == nil || (st.Phase == protocol.PhaseFailed) != (*st.Exit == 6) || st.Request.Module != "motd" {
			t.Fatalf("agent %s", b)
		}
	}
	if phases[protocol.PhaseFinished]+phases[protocol.PhaseFailed] != 40 || phases[protocol.PhaseFailed] < 3 || phases[protocol.PhaseFailed] > 20 {
		t.Fatalf("phases %v", phases)
	}
	if len(runs) != 42 {
		t.Fatalf("%d runs recorded", len(runs))
	}
	// A second puppetrun for the same id is a repeat.
	rr, _ := json.Marshal(protocol.RunRequest{ID: "d3", Module: "motd", Ref: "v1"})
	res, err = runQuery(t, c, client.QueryParam{Name: protocol.QueryPuppetRun, Payload: rr, FilterNodes: []string{"agent-0001"}, Timeout: 200 * time.Millisecond})
	if err != nil || !strings.Contains(string(res.payloads["agent-0001"]), `"result":"already"`) {
		t.Fatalf("repeat: %s %v", res.payloads["agent-0001"], err)
	}
	// Asked only if they know an id, nodes that do not stay silent.
	for id, want := range map[string]int{"d3": 42, "other": 0} {
		known, _ := json.Marshal(protocol.StatusRequest{ID: id, Known: true})
		res, err = runQuery(t, c, client.QueryParam{Name: protocol.QueryPuppetStatus, Payload: known, RequestAck: true, Timeout: 200 * time.Millisecond})
		if err != nil || len(res.resps) != want || len(res.acks) != 42 {
			t.Fatalf("known %s: %d answers, %d acks, %v", id, len(res.resps), len(res.acks), err)
		}
	}
}

// TestAgainstRealSerf checks the size limits against a real serf agent
// (Debian's, when installed): the simulator refuses exactly what it refuses.
func TestAgainstRealSerf(t *testing.T) {
	if _, err := exec.LookPath("serf"); err != nil {
		t.Skip("no serf binary")
	}
	if testing.Short() {
		t.Skip("starts a serf agent")
	}
	// The query `size` answers with as many bytes as its payload says.
	handler := `query:size=read n; head -c "$n" /dev/zero | tr '\000' x`
	cl := serfcluster.Start(t, serfcluster.Options{Handler: handler}, serfcluster.NodeSpec{Name: "master-01", Tags: map[string]string{"role": "puppetmaster"}})
	agent := dial(t, cl.Nodes()[0].RPCAddr, "")
	_, s := start(t, Config{Agents: 1}, "")
	sim := dial(t, s.Addr(), "")

	accepted := func(c *client.RPCClient, nodes []string) bool {
		return c.Query(&client.QueryParam{Name: "x", FilterNodes: nodes, Timeout: 10 * time.Millisecond,
			AckCh: make(chan string, 64), RespCh: make(chan client.NodeResponse, 64)}) == nil
	}
	var nodes []string
	maxNodes := 0
	for k := 1; k <= 120; k++ {
		nodes = append(nodes, fmt.Sprintf("agent-%04d", k))
		r, m := accepted(agent, nodes), accepted(sim, nodes)
		if r != m {
			t.Fatalf("a query naming %d nodes: serf accepts %v, the simulator %v", k, r, m)
		}
		if r {
			maxNodes = k
		}
	}
	maxPayload := 0
	for n := 440; n <= 512; n++ {
		p := []byte(strings.Repeat("x", n))
		r, m := agent.UserEvent("deploy", p, false), sim.UserEvent("deploy", p, false)
		if (r == nil) != (m == nil) {
			t.Fatalf("a %d-byte deploy event: serf %v, the simulator %v", n, r, m)
		}
		if r == nil {
			maxPayload = n
		}
	}
	if maxNodes == 120 || maxPayload == 512 {
		t.Fatalf("no limit reached: %d nodes, %d bytes", maxNodes, maxPayload)
	}
	t.Logf("both take a query naming at most %d nodes and a deploy event of at most %d payload bytes", maxNodes, maxPayload)

	// Serf drops an answer whose encoded response is over 1024 bytes.
	simMax := 0
	for n := 900; n <= 1024; n++ {
		if responseSize(1, 1<<30, "master-01", make([]byte, n)) <= QueryResponseSizeLimit {
			simMax = n
		}
	}
	for n := simMax - 2; n <= simMax+2; n++ {
		res, err := runQuery(t, agent, client.QueryParam{Name: "size", Payload: []byte(fmt.Sprint(n)), Timeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if sent := len(res.resps) == 1; sent != (n <= simMax) {
			t.Fatalf("an answer of %d bytes: serf sends it %v; the simulator's largest is %d", n, sent, simMax)
		}
	}
	t.Logf("both send an answer of at most %d bytes from master-01", simMax)
}

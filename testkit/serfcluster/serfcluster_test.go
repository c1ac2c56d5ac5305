package serfcluster

import (
	"encoding/json"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestClusterLifecycle(t *testing.T) {
	start := time.Now()
	c := Start(t, Options{Handler: "echo answer-from-{name}"},
		NodeSpec{Name: "n1", Tags: map[string]string{"segment": "qa"}},
		NodeSpec{Name: "n2", Tags: map[string]string{"segment": "qa"}},
		NodeSpec{Name: "n3", Tags: map[string]string{"segment": "prod"}},
	)
	t.Logf("3 agents joined in %s", time.Since(start).Round(time.Millisecond))
	ms := c.Members(t, c.Node("n3"))
	if len(ms) != 3 {
		t.Fatalf("members %+v", ms)
	}
	for _, m := range ms {
		if m.Status != "alive" || m.Tags["segment"] != c.Node(m.Name).Tags["segment"] {
			t.Fatalf("member %+v", m)
		}
	}

	// The handler answers queries: every node's answer arrives.
	out, err := exec.Command("serf", "query", "-rpc-addr", c.Node("n1").RPCAddr, "-format", "json", "-timeout", "2s", "ping", "x").Output()
	if err != nil {
		t.Fatal(err)
	}
	var q struct {
		Responses map[string]string `json:"Responses"`
	}
	if err := json.Unmarshal(out, &q); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var got []string
	for node, answer := range q.Responses {
		got = append(got, node+"="+strings.TrimSpace(answer))
	}
	sort.Strings(got)
	if strings.Join(got, ",") != "n1=answer-from-n1,n2=answer-from-n2,n3=answer-from-n3" {
		t.Fatalf("responses %v", got)
	}

	c.AddNode(t, NodeSpec{Name: "n4"})
	c.Node("n2").Kill()
	c.Node("n2").Kill() // twice is fine
	c.WaitStatus(t, c.Node("n1"), "n2", "failed", 0)
	c.Node("n3").Stop()
	c.WaitStatus(t, c.Node("n4"), "n3", "left", 0)

	// Both come back at their addresses; a restarted agent can be killed
	// again.
	n2 := c.Node("n2")
	c.Restart(t, n2, c.Node("n1"), false)
	c.Restart(t, c.Node("n3"), c.Node("n4"), true)
	c.WaitStatus(t, c.Node("n1"), "n3", "alive", 0) // Restart waited for n4's view only
	status, err := Members(c.Node("n1").RPCAddr)
	if err != nil {
		t.Fatal(err)
	}
	if len(status) != 4 || status["n2"] != "alive" || status["n3"] != "alive" {
		t.Fatalf("members after the restarts: %v", status)
	}
	n2.Kill()
	c.WaitStatus(t, c.Node("n1"), "n2", "failed", 0)
}

func TestAgentArgs(t *testing.T) {
	got := strings.Join(AgentConfig{Name: "a", BindAddr: "127.0.0.1:1", RPCAddr: "127.0.0.1:2",
		Tags: map[string]string{"role": "agent", "fqdn": "a"}, Handler: "h x", Join: "127.0.0.1:3", Replay: true}.Args(), " ")
	want := "agent -node a -bind 127.0.0.1:1 -advertise 127.0.0.1:1 -rpc-addr 127.0.0.1:2 -profile local -log-level debug " +
		"-tag fqdn=a -tag role=agent -event-handler h x -join 127.0.0.1:3 -replay"
	if got != want {
		t.Fatalf("args\n%s\nwant\n%s", got, want)
	}
}

func TestAuthKey(t *testing.T) {
	c := Start(t, Options{RPCAuth: "k3y"}, NodeSpec{Name: "a"}, NodeSpec{Name: "b"})
	if err := exec.Command("serf", "members", "-rpc-addr", c.Node("a").RPCAddr, "-rpc-auth", "wrong").Run(); err == nil {
		t.Fatal("a wrong key was accepted: the agent did not get -rpc-auth")
	}
}

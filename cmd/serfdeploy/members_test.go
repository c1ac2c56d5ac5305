package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
	"github.com/serfdeploy/serfdeploy/testkit/serfcluster"
)

func fiveAgents(t *testing.T, auth string) *serfcluster.Cluster {
	return serfcluster.Start(t, serfcluster.Options{RPCAuth: auth},
		serfcluster.NodeSpec{Name: "agent-01", Tags: map[string]string{"segment": "qa", "fqdn": "agent-01"}},
		serfcluster.NodeSpec{Name: "agent-010", Tags: map[string]string{"segment": "qa-extra", "fqdn": "agent-010"}},
		serfcluster.NodeSpec{Name: "agent-02", Tags: map[string]string{"segment": "qa", "fqdn": "agent-02"}},
		serfcluster.NodeSpec{Name: "agent-03", Tags: map[string]string{"segment": "prod", "fqdn": "agent-03"}},
		serfcluster.NodeSpec{Name: "master-01", Tags: map[string]string{"role": "puppetmaster", "fqdn": "master-01"}},
	)
}

type member struct {
	Name, Addr, Status string
	Tags               map[string]string
}

func membersJSON(t *testing.T, r deployrig.Result) []member {
	t.Helper()
	if r.Code != 0 {
		t.Fatalf("members failed: %s", r)
	}
	var doc struct {
		SchemaVersion int      `json:"schema_version"`
		Members       []member `json:"members"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil || doc.SchemaVersion != membersSchema {
		t.Fatalf("members JSON does not parse: %v\n%s", err, r.Stdout)
	}
	return doc.Members
}

func names(ms []member) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return strings.Join(out, ",")
}

func TestMembers(t *testing.T) {
	c := fiveAgents(t, "")
	env := []string{"SERF_RPC_ADDR=" + c.Nodes()[0].RPCAddr}

	all := membersJSON(t, deployrig.Run(t, bin, env, "members", "--format", "json"))
	if got := names(all); got != "agent-01,agent-010,agent-02,agent-03,master-01" {
		t.Fatalf("members: %s", got)
	}
	for _, m := range all {
		if m.Status != "alive" || m.Tags["fqdn"] != m.Name || !strings.HasPrefix(m.Addr, "127.0.0.1:") {
			t.Fatalf("member %+v", m)
		}
	}
	qa := membersJSON(t, deployrig.Run(t, bin, env, "members", "--format", "json", "--tag", "segment=qa"))
	if got := names(qa); got != "agent-01,agent-02" {
		t.Fatalf("--tag segment=qa: %s (the filter must match the whole value)", got)
	}
	one := membersJSON(t, deployrig.Run(t, bin, env, "members", "--format", "json", "--tag", "fqdn=agent-01"))
	if got := names(one); got != "agent-01" {
		t.Fatalf("--tag fqdn=agent-01: %s", got)
	}
	re := membersJSON(t, deployrig.Run(t, bin, env, "members", "--format", "json", "--tag", "segment=qa.*", "--node", "agent-010"))
	if got := names(re); got != "agent-010" {
		t.Fatalf("--tag segment=qa.* --node agent-010: %s", got)
	}

	// The text table, as a person reads it.
	r := deployrig.Run(t, bin, env, "members", "--tag", "segment=prod")
	if r.Code != 0 || !strings.Contains(r.Stdout, "agent-03") || !strings.Contains(r.Stdout, "segment=prod") || strings.Contains(r.Stdout, "agent-01") {
		t.Fatalf("table:\n%s", r)
	}
	if strings.Contains(r.Stdout, "\x1b[") {
		t.Fatal("escape codes in output to a pipe")
	}

	c.Node("agent-03").Kill()
	c.WaitStatus(t, c.Node("agent-01"), "agent-03", "failed", 0)
	failed := membersJSON(t, deployrig.Run(t, bin, env, "members", "--format", "json", "--status", "failed"))
	if got := names(failed); got != "agent-03" {
		t.Fatalf("--status failed: %s", got)
	}
	r = deployrig.Run(t, bin, env, "members", "--color", "always", "--tag", "segment=nothing")
	if r.Code != 0 || strings.Count(r.Stdout, "\n") != 1 {
		t.Fatalf("no match lists only the header:\n%s", r)
	}
}

func TestMembersAuthKey(t *testing.T) {
	c := serfcluster.Start(t, serfcluster.Options{RPCAuth: "s3cret"},
		serfcluster.NodeSpec{Name: "a1"}, serfcluster.NodeSpec{Name: "a2"})
	addr := c.Nodes()[0].RPCAddr
	ok := membersJSON(t, deployrig.Run(t, bin, []string{"SERF_RPC_AUTH=s3cret"}, "members", "--rpc-addr", addr, "--format", "json"))
	if names(ok) != "a1,a2" {
		t.Fatalf("with the key: %s", names(ok))
	}
	r := deployrig.Run(t, bin, nil, "members", "--rpc-addr", addr, "--rpc-auth", "wrong")
	if r.Code != 5 {
		t.Fatalf("wrong key: %s", r)
	}
	oneLine(t, r, "auth")
	r = deployrig.Run(t, bin, nil, "members", "--rpc-addr", addr)
	if r.Code != 5 {
		t.Fatalf("no key: %s", r)
	}
	oneLine(t, r, "auth")
}

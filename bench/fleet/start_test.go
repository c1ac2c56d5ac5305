package fleetbench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
	"github.com/serfdeploy/serfdeploy/testkit/loki"
	"github.com/serfdeploy/serfdeploy/testkit/puppet"
	"github.com/serfdeploy/serfdeploy/testkit/serfcluster"
)

// benchFleet is deployrig.Start's world, set up here rather than by
// deployrig.Start for one reason: deployrig.Start waits serfcluster's
// default 30 s for every agent to see every other alive, and with 50
// agents started at once memberlist's gossip now and then misses a join
// that only its next push-pull (every 30 s at that size with serf's local
// profile) repairs (measured: "agent-005 does not see agent-033 alive"
// after 30 s). The agents start in about 40 ms each; it is the join wait
// that needs to be longer, and serfcluster.Options.JoinTimeout sets it.
type benchFleet struct {
	Dir     string
	Cluster *serfcluster.Cluster
	LogURL  string // the Loki the nodes report to (-loki), or ""
}

// startFleet starts one master ("master") and the agents, whose handler is
// `bin handle` and whose puppet command is the stand-in.
func startFleet(b *testing.B, bin string, agents []string, si *deployrig.StandIn) *benchFleet {
	b.Helper()
	logURL := ""
	if *flagLoki {
		logURL = loki.Start(b).URL
	}
	f, specs, pnodes, repo := layOut(b, agents, si, logURL)
	dir := f.Dir
	// Long enough for memberlist's push-pull to repair missed joins a few
	// times over; bounded.
	join := 60*time.Second + time.Duration(len(specs))*time.Second
	handler := protocol.HandlerFilter() + "=" + fmt.Sprintf("%s handle --config %s/{name}.yaml", bin, filepath.Join(dir, "config"))
	f.Cluster = serfcluster.Start(b, serfcluster.Options{Handler: handler, JoinTimeout: join}, specs...)
	for _, n := range f.Cluster.Nodes() {
		f.writeConfig(b, n.Name, n.RPCAddr, pnodes[n.Name], repo, si)
	}
	return f
}

// layOut makes a bench fleet's directory: the module's git repository, the
// production environment, and each node's Puppet directories and config
// (without its agent's RPC address, which only a started agent has; the
// caller writes the config again then). It returns the master's and the
// agents' specs, master first, their Puppet nodes and the repository.
func layOut(b *testing.B, agents []string, si *deployrig.StandIn, logURL string) (*benchFleet, []serfcluster.NodeSpec, map[string]*puppet.Node, string) {
	b.Helper()
	dir := b.TempDir()
	f := &benchFleet{Dir: dir, LogURL: logURL}
	repo := deployrig.NewRepo(b, filepath.Join(dir, "git", "motd"))
	repo.CommitModule("v1", filepath.Join(dir, "files"), "")
	env := filepath.Join(dir, "code", "environments", "production")
	for _, d := range []string{filepath.Join(env, "modules"), filepath.Join(env, "manifests"), filepath.Join(dir, "config")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	specs := []serfcluster.NodeSpec{{Name: "master", Tags: map[string]string{"fqdn": "master", "role": "puppetmaster"}}}
	for _, a := range agents {
		specs = append(specs, serfcluster.NodeSpec{Name: a, Tags: map[string]string{"fqdn": a, "role": "agent"}})
	}
	pnodes := map[string]*puppet.Node{}
	for _, s := range specs {
		pn, err := puppet.NewNodeIn(filepath.Join(dir, "puppet", s.Name), s.Name)
		if err != nil {
			b.Fatal(err)
		}
		pnodes[s.Name] = pn
		f.writeConfig(b, s.Name, "", pn, repo.Dir, si)
	}
	return f, specs, pnodes, repo.Dir
}

// writeConfig writes a node's config as deployrig.Start does, with the
// stand-in as its puppet command.
func (f *benchFleet) writeConfig(b *testing.B, name, rpcAddr string, pn *puppet.Node, repo string, si *deployrig.StandIn) {
	var c strings.Builder
	fmt.Fprintf(&c, "state_dir: %s\n", filepath.Join(f.Dir, "state", name))
	fmt.Fprintf(&c, "handlers_dir: %s\n", filepath.Join(f.Dir, "handlers", name))
	c.WriteString("environment: production\n")
	if rpcAddr != "" {
		fmt.Fprintf(&c, "serf:\n  rpc_addr: %s\n", rpcAddr)
	}
	fmt.Fprintf(&c, "master:\n  modulepath: %s\n  modules:\n    motd: %s\n  trigger_timeout: 10s\n",
		filepath.Join(f.Dir, "code", "environments", "{environment}", "modules"), repo)
	c.WriteString("puppet:\n  command:\n")
	r := strings.NewReplacer("{name}", name, "{summary_file}", pn.SummaryFile())
	for _, a := range si.Command() {
		fmt.Fprintf(&c, "    - %q\n", r.Replace(a))
	}
	fmt.Fprintf(&c, "  summary_file: %s\n  state_dir: %s\n  timeout: 2m\n", pn.SummaryFile(), pn.StateDir())
	if f.LogURL != "" {
		fmt.Fprintf(&c, "logging:\n  url: %s\n", f.LogURL)
	}
	if err := os.WriteFile(filepath.Join(f.Dir, "config", name+".yaml"), []byte(c.String()), 0o644); err != nil {
		b.Fatal(err)
	}
}

// Package deployrig builds the deploy rig the integration tests run in:
// the serfdeploy binary, a git repository with a sample module, masters and
// agents that are real serf agents (testkit/serfcluster) whose handler is
// `serfdeploy handle`, each node with its own config, state and Puppet
// directories (testkit/puppet), and a way to run the CLI as a user does.
// standin.go is a stand-in for the puppet command, for tests that need
// runs of a chosen length and outcome and a record of what really ran.
package deployrig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/testkit/puppet"
	"github.com/serfdeploy/serfdeploy/testkit/serfcluster"
)

// BuildBinary builds serfdeploy into dir and returns its path. Call it once
// from TestMain.
func BuildBinary(dir string) (string, error) {
	bin := filepath.Join(dir, "serfdeploy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/serfdeploy")
	cmd.Dir = root()
	// Static, as scripts/package.sh builds the release: a dynamically
	// linked binary pays the loader on every start (about 0.9 ms of CPU
	// of a handler's 3 on this machine).
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// root is the repository's top directory.
func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Node describes one node of a rig.
type Node struct {
	Name   string
	Tags   map[string]string
	Master bool
	// Facts are external facts of this node (a YAML file in its Puppet
	// $vardir/facts.d, which `puppet facts show` reads), Classes its
	// Puppet classes.txt, for --fact and --class. FactsCommand replaces
	// its facts command (default: `puppet facts show` as this node).
	Facts        map[string]string
	Classes      []string
	FactsCommand []string
}

// Options shape a rig.
type Options struct {
	Bin   string
	Nodes []Node
	// Server, when set, makes agents run `puppet agent --test` against it and
	// masters install into its code dir; otherwise agents run `puppet apply`
	// of the master's modulepath (on one machine they share the disk).
	Server  *puppet.Server
	LogURL  string
	RPCAuth string
	// Environment is the Puppet environment masters install into (default
	// production); it is created unless MissingEnvironment is set.
	Environment string
	// PuppetTimeout bounds each run (handler's puppet.timeout); default 5m.
	PuppetTimeout time.Duration
	// ExtraConfig is appended to every node's YAML config.
	ExtraConfig string
	// NetNS runs the agents in this network namespace (serfcluster.Options).
	NetNS string
	// OperatorHandlers registers, after serfdeploy's handler, the shell
	// router scripts/handler-router.sh for every event, with the node's
	// handlers directory (Rig.HandlersDir): an operator's own user-NAME,
	// query-NAME and member-join executables.
	OperatorHandlers bool
}

// Rig is a running cluster with its module repository.
type Rig struct {
	t       testing.TB
	Opts    Options
	Dir     string
	Repo    *Repo
	CodeDir string
	Files   string // where the sample module writes each node's file
	Cluster *serfcluster.Cluster
	Puppet  map[string]*puppet.Node
}

// Start builds the rig; everything stops with the test.
func Start(t testing.TB, opts Options) *Rig {
	t.Helper()
	if opts.Environment == "" {
		opts.Environment = "production"
	}
	if opts.PuppetTimeout == 0 {
		opts.PuppetTimeout = 5 * time.Minute
	}
	dir := t.TempDir()
	f := &Rig{t: t, Opts: opts, Dir: dir, Files: filepath.Join(dir, "files"), Puppet: map[string]*puppet.Node{}}
	must(t, os.MkdirAll(f.Files, 0o755))
	f.Repo = NewRepo(t, filepath.Join(dir, "git", "motd"))
	f.Repo.CommitModule("v1", f.Files, "")
	if opts.Server != nil {
		f.CodeDir = opts.Server.CodeDir
		must(t, opts.Server.CreateEnvironment(opts.Environment))
		must(t, opts.Server.WriteSitePP(opts.Environment, "node default { include motd }\n"))
	} else {
		f.CodeDir = filepath.Join(dir, "code")
		envDir := filepath.Join(f.CodeDir, "environments", opts.Environment)
		must(t, os.MkdirAll(filepath.Join(envDir, "modules"), 0o755))
		must(t, os.MkdirAll(filepath.Join(envDir, "manifests"), 0o755))
		must(t, os.WriteFile(filepath.Join(envDir, "manifests", "site.pp"), []byte("include motd\n"), 0o644))
	}

	var specs []serfcluster.NodeSpec
	for _, n := range opts.Nodes {
		tags := map[string]string{"fqdn": n.Name}
		for k, v := range n.Tags {
			tags[k] = v
		}
		if n.Master {
			tags["role"] = "puppetmaster"
		}
		pn, err := puppet.NewNodeIn(filepath.Join(dir, "puppet", n.Name), n.Name)
		must(t, err)
		f.Puppet[n.Name] = pn
		must(t, writePuppetKnowledge(pn, n))
		specs = append(specs, serfcluster.NodeSpec{Name: n.Name, Tags: tags})
	}
	// The handler reads the node's config from a path known before the
	// agents start, so that their very first events find it. serf runs it
	// for serfdeploy's event and queries only (protocol.HandlerFilter).
	handlerCmd := protocol.HandlerFilter() + "=" + fmt.Sprintf("%s handle --config %s/{name}.yaml", opts.Bin, filepath.Join(dir, "config"))
	var extra []string
	if opts.OperatorHandlers {
		// "*=": the command holds a "=", which serf would take for the
		// end of a filter.
		extra = append(extra, fmt.Sprintf("*=SERF_HANDLERS_DIR=%s /bin/sh %s", filepath.Join(dir, "handlers", "{name}"), filepath.Join(root(), "scripts", "handler-router.sh")))
	}
	must(t, os.MkdirAll(filepath.Join(dir, "config"), 0o755))
	for _, n := range opts.Nodes {
		// The RPC address is only known once the agent runs; the config
		// is completed below, before any deploy.
		must(t, os.WriteFile(f.configPath(n.Name), []byte(f.config(n.Name, "")), 0o644))
	}
	f.Cluster = serfcluster.Start(t, serfcluster.Options{Handler: handlerCmd, ExtraHandlers: extra, RPCAuth: opts.RPCAuth, NetNS: opts.NetNS}, specs...)
	for _, n := range f.Cluster.Nodes() {
		must(t, os.WriteFile(f.configPath(n.Name), []byte(f.config(n.Name, n.RPCAddr)), 0o644))
	}
	return f
}

func (f *Rig) configPath(name string) string {
	return filepath.Join(f.Dir, "config", name+".yaml")
}

// ModulePath is where masters install modules for env.
func (f *Rig) ModulePath(env string) string {
	return filepath.Join(f.CodeDir, "environments", env, "modules")
}

// HandlersDir is where a node's operator handlers go (Options.OperatorHandlers).
func (f *Rig) HandlersDir(name string) string { return filepath.Join(f.Dir, "handlers", name) }

// StateDir is a node's serfdeploy state directory.
func (f *Rig) StateDir(name string) string { return filepath.Join(f.Dir, "state", name) }

func (f *Rig) config(name, rpcAddr string) string {
	pn := f.Puppet[name]
	var cmd []string
	if f.Opts.Server != nil {
		cmd = pn.AgentArgs(f.Opts.Server)
	} else {
		cmd = pn.ApplyEnvArgs(filepath.Join(f.CodeDir, "environments"),
			filepath.Join(f.CodeDir, "environments", "{environment}", "manifests", "site.pp"))
	}
	return NodeConfig{
		StateDir: f.StateDir(name), HandlersDir: f.HandlersDir(name), Environment: f.Opts.Environment,
		RPCAddr: rpcAddr, RPCAuth: f.Opts.RPCAuth, CodeDir: f.CodeDir, RepoDir: f.Repo.Dir,
		PuppetCommand: cmd, SummaryFile: pn.SummaryFile(), PuppetState: pn.StateDir(), PuppetTimeout: f.Opts.PuppetTimeout,
		LogURL: f.Opts.LogURL, Extra: f.Opts.ExtraConfig, FactsCommand: f.factsCommand(name, pn),
	}.YAML()
}

// factsCommand is the node's FactsCommand, or `puppet facts show` as it.
func (f *Rig) factsCommand(name string, pn *puppet.Node) []string {
	for _, n := range f.Opts.Nodes {
		if n.Name == name && len(n.FactsCommand) > 0 {
			return n.FactsCommand
		}
	}
	return pn.FactsArgs()
}

// writePuppetKnowledge gives a node its Facts and Classes.
func writePuppetKnowledge(pn *puppet.Node, n Node) error {
	if len(n.Facts) > 0 {
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(n.Facts)) {
			fmt.Fprintf(&b, "%s: %q\n", k, n.Facts[k])
		}
		if err := os.MkdirAll(pn.ExternalFactsDir(), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(pn.ExternalFactsDir(), "deployrig.yaml"), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	if n.Classes != nil {
		if err := os.MkdirAll(pn.StateDir(), 0o755); err != nil {
			return err
		}
		return os.WriteFile(pn.ClassesFile(), []byte(strings.Join(n.Classes, "\n")+"\n"), 0o640)
	}
	return nil
}

// Result is what one CLI invocation did.
type Result struct {
	Code   int
	Stdout string
	Stderr string
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.Code, r.Stdout, r.Stderr)
}

// CLI runs serfdeploy against the first master's agent (or the first node),
// as a user at a shell would. env adds "K=V" entries.
func (f *Rig) CLI(env []string, args ...string) Result {
	f.t.Helper()
	rpc := f.Cluster.Nodes()[0].RPCAddr
	for _, n := range f.Opts.Nodes {
		if n.Master {
			rpc = f.Cluster.Node(n.Name).RPCAddr
			break
		}
	}
	base := []string{"SERF_RPC_ADDR=" + rpc, "NO_COLOR=1"}
	if f.Opts.RPCAuth != "" {
		base = append(base, "SERF_RPC_AUTH="+f.Opts.RPCAuth)
	}
	return Run(f.t, f.Opts.Bin, append(base, env...), args...)
}

// Run runs the binary with a clean environment plus env.
func Run(t testing.TB, bin string, env []string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	res := Result{Stdout: out.String(), Stderr: errb.String()}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		res.Code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("running serfdeploy %v: %v", args, err)
	}
	t.Logf("serfdeploy %s: exit %d in %s", strings.Join(args, " "), res.Code, time.Since(start).Round(time.Millisecond))
	return res
}

// File returns the content the sample module wrote on node, or "" if none.
func (f *Rig) File(node string) string {
	b, err := os.ReadFile(filepath.Join(f.Files, node+".motd"))
	if err != nil {
		return ""
	}
	return string(b)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

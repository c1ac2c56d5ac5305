package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
	"github.com/serfdeploy/serfdeploy/testkit/loki"
	"github.com/serfdeploy/serfdeploy/testkit/puppet"
	"github.com/serfdeploy/serfdeploy/testkit/serfcluster"
)

// The cluster is kept for the whole campaign and reset between scenarios
// (cluster.reset): one master, the agents, one node the CLI talks to
// ("cli", never a target) and one spare node that joins during a deploy
// ("late-01"). Its serf agents are started here, with testkit/serfcluster's
// error-returning pieces, rather than by a serfcluster.Cluster, which takes
// a testing.TB.

const (
	masterName = "master"
	cliName    = "cli"
	joinerName = "late-01"
	module     = "motd"
)

func agentName(i int) string { return fmt.Sprintf("agent-%02d", i) }

// node is one serf agent of the cluster, whether running or not.
type node struct {
	name       string
	tags       map[string]string
	bind, rpc  string
	config     string
	puppet     *puppet.Node
	logPath    string
	mu         sync.Mutex
	agent      *serfcluster.Agent // the last one started; nil before
	restarts   int
	wantJoined bool // base nodes: up between scenarios; the joiner: not
}

type cluster struct {
	dir     string
	bin     string
	verbose bool
	shim    *tbShim
	loki    *loki.Loki // nil: no logging service
	lokiOff bool       // stopped by a fault, not yet restarted

	repo    *deployrig.Repo
	commits map[string]string // ref → commit

	standin, plans, starts, truth, modules string

	nodes  map[string]*node
	order  []string
	agents []string
}

// newCluster builds the world and starts every base node.
func newCluster(dir, bin string, agents int, withLoki, verbose bool) (c *cluster, err error) {
	c = &cluster{dir: dir, bin: bin, verbose: verbose, nodes: map[string]*node{}, commits: map[string]string{}}
	c.shim = &tbShim{dir: filepath.Join(dir, "tmp"), verbose: verbose}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(tbFatal)
			if !ok {
				panic(r)
			}
			c.stop()
			c, err = nil, errors.New(string(f))
		}
	}()
	files := filepath.Join(dir, "files")
	env := filepath.Join(dir, "code", "environments", "production")
	c.modules = filepath.Join(env, "modules")
	for _, d := range []string{files, c.modules, filepath.Join(env, "manifests"), filepath.Join(dir, "config"), filepath.Join(dir, "plans"), c.shim.dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	c.repo = deployrig.NewRepo(c.shim, filepath.Join(dir, "git", module))
	for _, ref := range []string{"v1", "v2"} {
		c.commits[ref] = c.repo.CommitModule(ref, files, "")
	}
	if err := c.writeStandIn(); err != nil {
		return nil, err
	}
	if withLoki {
		lokiBin, err := loki.FindBinary()
		if err != nil {
			return nil, err
		}
		begin := time.Now()
		if c.loki, err = loki.Launch(lokiBin, filepath.Join(dir, "loki")); err != nil {
			return nil, err
		}
		c.shim.Logf("Loki ready at %s after %s", c.loki.URL, time.Since(begin).Round(time.Millisecond))
	}
	names := []string{masterName, cliName}
	for i := 1; i <= agents; i++ {
		names = append(names, agentName(i))
		c.agents = append(c.agents, agentName(i))
	}
	names = append(names, joinerName)
	for _, name := range names {
		tags := map[string]string{"fqdn": name, "role": "agent"}
		switch name {
		case masterName:
			tags["role"] = "puppetmaster"
		case cliName:
			tags["role"] = "ci"
		}
		pn, err := puppet.NewNodeIn(filepath.Join(dir, "puppet", name), name)
		if err != nil {
			return nil, err
		}
		n := &node{name: name, tags: tags, puppet: pn, wantJoined: name != joinerName,
			config: filepath.Join(dir, "config", name+".yaml")}
		c.nodes[name] = n
		c.order = append(c.order, name)
	}
	for _, name := range c.order {
		n := c.nodes[name]
		if !n.wantJoined {
			continue
		}
		if err := c.start(n); err != nil {
			c.stop()
			return nil, err
		}
	}
	if err := c.waitMembers(60 * time.Second); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// writeConfig writes a node's handler config: the stand-in as its Puppet,
// its own state, the master's repository, the logging service if any.
func (c *cluster) writeConfig(n *node) error {
	conf := deployrig.NodeConfig{
		StateDir: c.stateDir(n.name), HandlersDir: filepath.Join(c.dir, "handlers", n.name), Environment: "production",
		RPCAddr: n.rpc, CodeDir: filepath.Join(c.dir, "code"), RepoDir: c.repo.Dir,
		PuppetCommand: []string{"/bin/sh", c.standin, n.name, n.puppet.SummaryFile()},
		SummaryFile:   n.puppet.SummaryFile(), PuppetState: n.puppet.StateDir(), PuppetTimeout: 2 * time.Minute,
	}
	if c.loki != nil {
		conf.LogURL = c.loki.URL
	}
	return os.WriteFile(n.config, []byte(conf.YAML()), 0o644)
}

func (c *cluster) stateDir(name string) string { return filepath.Join(c.dir, "state", name) }

// current is n's agent: the last one started, nil before the first.
func (n *node) current() *serfcluster.Agent {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.agent
}

func (n *node) running() bool {
	a := n.current()
	return a != nil && a.Running()
}

// start starts n's serf agent at its addresses (chosen on its first start,
// new ones only if they were taken meanwhile), joining the master, and
// waits until its RPC answers.
func (c *cluster) start(n *node) error {
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		if n.bind == "" || attempt > 0 {
			bp, err := serfcluster.FreePort(true)
			if err != nil {
				return err
			}
			rp, err := serfcluster.FreePort(false)
			if err != nil {
				return err
			}
			n.mu.Lock()
			n.bind, n.rpc = fmt.Sprintf("127.0.0.1:%d", bp), fmt.Sprintf("127.0.0.1:%d", rp)
			n.mu.Unlock()
		}
		if err := c.writeConfig(n); err != nil {
			return err
		}
		a, err := c.tryStart(n)
		if err == nil {
			n.mu.Lock()
			n.agent = a
			n.mu.Unlock()
			return nil
		}
		last = err
	}
	return fmt.Errorf("starting %s: %w", n.name, last)
}

func (c *cluster) tryStart(n *node) (*serfcluster.Agent, error) {
	conf := serfcluster.AgentConfig{Name: n.name, BindAddr: n.bind, RPCAddr: n.rpc, Profile: "local", Tags: n.tags,
		Handler: protocol.HandlerFilter() + "=" + fmt.Sprintf("%s handle --config %s", c.bin, n.config)}
	if m := c.nodes[masterName]; n.name != masterName && m.bind != "" {
		conf.Join = m.bind
	}
	n.logPath = filepath.Join(c.dir, "serf", fmt.Sprintf("%s-%d.log", n.name, n.restarts))
	n.restarts++
	if err := os.MkdirAll(filepath.Dir(n.logPath), 0o755); err != nil {
		return nil, err
	}
	cmd := exec.Command("serf", conf.Args()...)
	cmd.Dir = filepath.Dir(n.logPath)
	cmd.Env = cleanEnv()
	// In its own process group: the handlers it runs die with it on a
	// SIGKILL (the workers have their own session).
	return serfcluster.StartAgent(cmd, n.logPath, func() error {
		_, err := serfcluster.Members(n.rpc)
		return err
	})
}

// cleanEnv is this process's environment without serf's or serfdeploy's
// variables, which would change what the handlers and the CLI do.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SERF_") || strings.HasPrefix(kv, "SERFDEPLOY_") || strings.HasPrefix(kv, "BUILD_") || strings.HasPrefix(kv, "JOB_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// kill ends n's serf agent and its handlers with SIGKILL (a crashed
// machine, as serf sees it).
func (c *cluster) kill(n *node) {
	if a := n.current(); a != nil {
		a.Kill()
	}
}

// leave makes n's agent leave gracefully (`serf leave`) and waits for it.
func (c *cluster) leave(n *node) {
	a := n.current()
	if a == nil || !a.Running() {
		return
	}
	_ = exec.Command("serf", "leave", "-rpc-addr", n.rpc).Run()
	a.Wait(10 * time.Second)
	a.Kill()
}

// sigterm sends SIGTERM to n's agent alone (as systemd's KillMode=process
// does): serf 0.8 then shuts down without leaving, the others see it fail.
func (c *cluster) sigterm(n *node) {
	a := n.current()
	if a == nil {
		return
	}
	a.Signal(syscall.SIGTERM)
	if !a.Wait(10 * time.Second) {
		a.Kill()
	}
}

// membersProblem says what is not as it should be between scenarios: every
// base node alive and the joiner not alive, as the master and the CLI's
// node see it; "" when all is well.
func (c *cluster) membersProblem() string {
	for _, obs := range []string{masterName, cliName} {
		ms, err := serfcluster.Members(c.nodes[obs].rpc)
		if err != nil {
			return err.Error()
		}
		for _, name := range c.order {
			n := c.nodes[name]
			alive := ms[name] == "alive"
			if n.wantJoined && !alive {
				return fmt.Sprintf("%s sees %s %q", obs, name, ms[name])
			}
			if !n.wantJoined && alive {
				return fmt.Sprintf("%s still sees %s alive", obs, name)
			}
		}
	}
	return ""
}

func (c *cluster) waitMembers(bound time.Duration) error {
	return settle(bound, c.membersProblem)
}

// waitAlive waits until the master and the CLI's node see name alive.
func (c *cluster) waitAlive(name string, bound time.Duration) error {
	return settle(bound, func() string {
		for _, obs := range []string{masterName, cliName} {
			ms, err := serfcluster.Members(c.nodes[obs].rpc)
			if err != nil {
				return err.Error()
			}
			if ms[name] != "alive" {
				return fmt.Sprintf("%s sees %s %q", obs, name, ms[name])
			}
		}
		return ""
	})
}

// settle polls problem until it says "" (all is well) or bound passes.
func settle(bound time.Duration, problem func() string) error {
	deadline := time.Now().Add(bound)
	for {
		p := problem()
		if p == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("members not settled after %s: %s", bound, p)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// reset brings the cluster back to its state between scenarios: no
// stand-in running, every base node up and alive, the joiner gone, the
// logging service up.
func (c *cluster) reset() error {
	if left := c.waitStandInsDone(90 * time.Second); len(left) > 0 {
		for _, pid := range left {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
		return fmt.Errorf("stand-in runs %v still running 90 s after the scenario (killed)", left)
	}
	if j := c.nodes[joinerName]; j.running() {
		c.leave(j)
	}
	for _, name := range c.order {
		n := c.nodes[name]
		if n.wantJoined && !n.running() {
			if err := c.start(n); err != nil {
				return err
			}
		}
	}
	if c.loki != nil && c.lokiOff {
		if err := c.restartLoki(); err != nil {
			return err
		}
	}
	if err := c.waitMembers(45 * time.Second); err != nil {
		// A node the others still list failed although it runs: a
		// restart of its agent settles it.
		return err
	}
	return nil
}

// backUp restarts the CLI's agent and the logging service if a fault
// stopped them, so that a re-attach can read the deploy.
func (c *cluster) backUp() error {
	if n := c.nodes[cliName]; !n.running() {
		if err := c.start(n); err != nil {
			return err
		}
	}
	if c.loki != nil && c.lokiOff {
		if err := c.restartLoki(); err != nil {
			return err
		}
	}
	return c.waitAlive(cliName, 30*time.Second)
}

func (c *cluster) restartLoki() error {
	begin := time.Now()
	if err := c.loki.Relaunch(); err != nil {
		return err
	}
	c.shim.Logf("Loki ready at %s after %s", c.loki.URL, time.Since(begin).Round(time.Millisecond))
	c.lokiOff = false
	return nil
}

// stop ends every agent and the logging service.
func (c *cluster) stop() {
	if c == nil {
		return
	}
	for _, name := range c.order {
		if a := c.nodes[name].current(); a != nil {
			a.SignalGroup(syscall.SIGTERM)
		}
	}
	for _, name := range c.order {
		if a := c.nodes[name].current(); a != nil && !a.Wait(3*time.Second) {
			a.Kill()
		}
	}
	for _, pid := range c.standInPIDs() {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	if c.loki != nil {
		c.loki.Stop()
	}
	c.shim.cleanup()
}

// standInPIDs lists the stand-in runs of this cluster still running (each
// is its process group's leader: the worker starts Puppet with Setpgid).
func (c *cluster) standInPIDs() []int {
	var out []int
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) >= 2 && args[0] == "/bin/sh" && args[1] == c.standin {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			if !zombie(pid) {
				out = append(out, pid)
			}
		}
	}
	sort.Ints(out)
	return out
}

func zombie(pid int) bool {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z'
}

// waitStandInsDone waits until no stand-in runs, for at most bound; it
// returns those still running.
func (c *cluster) waitStandInsDone(bound time.Duration) []int {
	deadline := time.Now().Add(bound)
	for {
		pids := c.standInPIDs()
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tbShim lets this program use the test helpers that take a testing.TB
// (deployrig.NewRepo, loki): Fatal panics with a tbFatal, recovered by the
// caller; TempDir and Cleanup work.
type tbShim struct {
	testing.TB
	dir      string
	verbose  bool
	n        int
	cleanups []func()
}

type tbFatal string

func (t *tbShim) Helper()                   {}
func (t *tbShim) Failed() bool              { return false }
func (t *tbShim) Fatal(args ...any)         { panic(tbFatal(fmt.Sprint(args...))) }
func (t *tbShim) Fatalf(f string, a ...any) { panic(tbFatal(fmt.Sprintf(f, a...))) }
func (t *tbShim) Error(args ...any)         { panic(tbFatal(fmt.Sprint(args...))) }
func (t *tbShim) Errorf(f string, a ...any) { panic(tbFatal(fmt.Sprintf(f, a...))) }
func (t *tbShim) Log(args ...any) {
	if t.verbose {
		fmt.Fprintln(os.Stderr, args...)
	}
}
func (t *tbShim) Logf(f string, a ...any) {
	if t.verbose {
		fmt.Fprintf(os.Stderr, f+"\n", a...)
	}
}
func (t *tbShim) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }
func (t *tbShim) TempDir() string {
	t.n++
	d := filepath.Join(t.dir, strconv.Itoa(t.n))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func (t *tbShim) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}

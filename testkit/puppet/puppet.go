// Package puppet runs real Puppet for the tests: a puppetserver (Debian
// package, started once per test binary through scripts/puppetserver.sh)
// and simulated nodes, each with its own certname and directories, so that
// several agents share one machine without sharing state. (The stand-in
// for the puppet command, which runs no Puppet, is testkit/deployrig's
// standin.go.)
package puppet

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Server is a running puppetserver.
type Server struct {
	Dir     string
	Port    int
	CodeDir string
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// StartServer sets up and starts a puppetserver for a test binary (call it
// from TestMain) in dir with the given port; it reuses one already running
// there. The returned function stops it.
func StartServer(dir string, port int) (*Server, func(), error) {
	script := filepath.Join(repoRoot(), "scripts", "puppetserver.sh")
	run := func(cmd string) error {
		c := exec.Command("sh", script, cmd, dir)
		c.Env = append(os.Environ(), "PUPPETSERVER_PORT="+strconv.Itoa(port))
		c.Stdout, c.Stderr = os.Stderr, os.Stderr
		return c.Run()
	}
	s := &Server{Dir: dir, Port: port, CodeDir: filepath.Join(dir, "code")}
	stop := func() { _ = run("stop") }
	if run("status") == nil {
		return s, stop, nil
	}
	for _, step := range []string{"setup", "start", "wait"} {
		if err := run(step); err != nil {
			stop()
			return nil, nil, fmt.Errorf("puppetserver %s: %w", step, err)
		}
	}
	return s, stop, nil
}

// EnvironmentDir is where an environment's code lives.
func (s *Server) EnvironmentDir(env string) string {
	return filepath.Join(s.CodeDir, "environments", env)
}

// CreateEnvironment makes an empty environment (modules/ and an empty
// site.pp).
func (s *Server) CreateEnvironment(env string) error {
	dir := s.EnvironmentDir(env)
	for _, d := range []string{"modules", "manifests"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	site := filepath.Join(dir, "manifests", "site.pp")
	if _, err := os.Stat(site); os.IsNotExist(err) {
		return os.WriteFile(site, nil, 0o644)
	}
	return nil
}

// WriteSitePP replaces an environment's site.pp.
func (s *Server) WriteSitePP(env, content string) error {
	return os.WriteFile(filepath.Join(s.EnvironmentDir(env), "manifests", "site.pp"), []byte(content), 0o644)
}

// Node is one simulated Puppet node.
type Node struct {
	Name string
	Dir  string
}

// NewNode makes a node with its directories under the test's temp dir.
func NewNode(t testing.TB, name string) *Node {
	t.Helper()
	n, err := NewNodeIn(filepath.Join(t.TempDir(), name), name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// NewNodeIn makes a node with its directories under dir.
func NewNodeIn(dir, name string) (*Node, error) {
	for _, d := range []string{"conf", "var", "ssl", "public", "run", "log", "code"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	return &Node{Name: name, Dir: dir}, nil
}

// dirArgs keep every piece of Puppet state of this node in its own
// directory. Debian's Puppet 7 writes last_run_summary.yaml under publicdir,
// not vardir, hence --publicdir.
func (n *Node) dirArgs() []string {
	return []string{
		"--certname", n.Name,
		"--confdir", filepath.Join(n.Dir, "conf"), "--vardir", filepath.Join(n.Dir, "var"),
		"--ssldir", filepath.Join(n.Dir, "ssl"), "--publicdir", filepath.Join(n.Dir, "public"),
		"--rundir", filepath.Join(n.Dir, "run"), "--logdir", filepath.Join(n.Dir, "log"),
	}
}

// AgentArgs is `puppet agent --test` against s, with "{environment}" for the
// handler to fill in. --http_keepalive_timeout 0 avoids a 30 s stall seen
// when agents reuse connections on this machine.
func (n *Node) AgentArgs(s *Server) []string {
	args := []string{"puppet", "agent", "--test", "--detailed-exitcodes", "--environment", "{environment}",
		"--server", "localhost", "--serverport", strconv.Itoa(s.Port), "--http_keepalive_timeout", "0",
		"--codedir", filepath.Join(n.Dir, "code")}
	return append(args, n.dirArgs()...)
}

// ApplyArgs is `puppet apply` of manifest with modulepath, as this node.
func (n *Node) ApplyArgs(modulepath, manifest string) []string {
	args := []string{"puppet", "apply", "--detailed-exitcodes", "--modulepath", modulepath,
		"--codedir", filepath.Join(n.Dir, "code")}
	args = append(args, n.dirArgs()...)
	return append(args, manifest)
}

// ApplyEnvArgs is `puppet apply` of manifest in the environment named by
// the handler's {environment}, found under environmentpath: Puppet then
// reads the environment's environment.conf (its config_version) as an
// agent's compile on the server does.
func (n *Node) ApplyEnvArgs(environmentpath, manifest string) []string {
	args := []string{"puppet", "apply", "--detailed-exitcodes", "--environmentpath", environmentpath,
		"--environment", "{environment}", "--codedir", filepath.Join(n.Dir, "code")}
	args = append(args, n.dirArgs()...)
	return append(args, manifest)
}

// SummaryFile is this node's last_run_summary.yaml.
func (n *Node) SummaryFile() string { return filepath.Join(n.Dir, "public", "last_run_summary.yaml") }

// StateDir is this node's Puppet statedir (agent_disabled.lock,
// agent_catalog_run.lock), as `puppet config print statedir` reports it.
func (n *Node) StateDir() string { return filepath.Join(n.Dir, "var", "state") }

// FactsArgs is `puppet facts show --render-as json` as this node: the
// facts its agent would send, external ones from ExternalFactsDir
// included.
func (n *Node) FactsArgs() []string {
	return append([]string{"puppet", "facts", "show", "--render-as", "json"}, n.dirArgs()...)
}

// ExternalFactsDir is where Puppet reads this node's external facts
// (pluginfactdest, $vardir/facts.d): a file name.yaml there of
// `key: value` lines adds those facts.
func (n *Node) ExternalFactsDir() string { return filepath.Join(n.Dir, "var", "facts.d") }

// ClassesFile is this node's Puppet classfile ($statedir/classes.txt),
// written by an agent run or `puppet apply --write_catalog_summary`.
func (n *Node) ClassesFile() string { return filepath.Join(n.StateDir(), "classes.txt") }

// Disable runs `puppet agent --disable MSG` as this node.
func (n *Node) Disable(msg string) error {
	args := append([]string{"agent", "--disable", msg}, n.dirArgs()...)
	out, err := exec.Command("puppet", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("puppet agent --disable: %v: %s", err, out)
	}
	return nil
}

// HoldRunLock makes Puppet on this node see a run in progress: the run
// lock file names a live process called puppet, as a real `puppet agent`
// run's does (Puppet, and serfdeploy, take a lock naming any other process
// for a stale one).
func (n *Node) HoldRunLock() (release func(), err error) {
	if err := os.MkdirAll(n.StateDir(), 0o755); err != nil {
		return nil, err
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		return nil, err
	}
	named := filepath.Join(n.Dir, "puppet") // the process takes the link's name
	if err := os.Symlink(sleep, named); err != nil && !os.IsExist(err) {
		return nil, err
	}
	holder := exec.Command(named, "600")
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := holder.Start(); err != nil {
		return nil, err
	}
	lock := filepath.Join(n.StateDir(), "agent_catalog_run.lock")
	if err := os.WriteFile(lock, []byte(strconv.Itoa(holder.Process.Pid)), 0o644); err != nil {
		holder.Process.Kill()
		return nil, err
	}
	return func() {
		os.Remove(lock)
		holder.Process.Kill()
		holder.Wait()
	}, nil
}

// Output strips Facter's harmless sandbox noise ("Permission denied ...
// /proc/1/environ") from Puppet's output, for messages in tests.
func Output(b []byte) string {
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, "/proc/1/environ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

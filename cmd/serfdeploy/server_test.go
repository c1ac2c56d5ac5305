package main

import (
	"net"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
	"github.com/serfdeploy/serfdeploy/testkit/puppet"
)

// One puppetserver for the tests that need it, started by the first of
// them (about 50 s) and stopped by TestMain.
type sharedServer struct {
	once   sync.Once
	server *puppet.Server
	stop   func()
	err    error
	dir    string
}

var puppetServer sharedServer

func (s *sharedServer) get(t *testing.T) *puppet.Server {
	t.Helper()
	s.once.Do(func() {
		s.dir, s.err = os.MkdirTemp("", "serfdeploy-puppetserver-")
		if s.err != nil {
			return
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			s.err = err
			return
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		s.server, s.stop, s.err = puppet.StartServer(s.dir, port)
	})
	if s.err != nil {
		t.Fatalf("puppetserver: %v", s.err)
	}
	return s.server
}

func (s *sharedServer) shutdown() {
	if s.stop != nil {
		s.stop()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

func serverRig(t *testing.T) *deployrig.Rig {
	return qaRig(t, deployrig.Options{Server: puppetServer.get(t)})
}

func TestServerDeployV1ThenV2(t *testing.T) {
	f := serverRig(t)
	for _, v := range []string{"v1", "v2"} {
		if v == "v2" {
			f.Repo.CommitModule("v2", f.Files, "")
		}
		r := f.CLI(nil, deployArgs("--ref", v, "--tag", "segment=qa", "--id", "server-"+v)...)
		if r.Code != 0 {
			t.Fatalf("deploy %s: %s", v, r)
		}
		for _, n := range []string{"agent-01", "agent-02"} {
			if got := f.File(n); got != "motd "+v+" on "+n+"\n" {
				t.Fatalf("after %s, %s has %q", v, n, got)
			}
		}
		if f.File("agent-03") != "" {
			t.Fatal("the prod node was touched")
		}
	}
	// The module the server compiled from is the one the master installed.
	link, err := os.Readlink(f.ModulePath("production") + "/motd")
	if err != nil || !strings.Contains(link, "server-v2") {
		t.Fatalf("modulepath entry %q %v", link, err)
	}
}

func TestServerCompileError(t *testing.T) {
	f := serverRig(t)
	f.Repo.Commit("v2-syntax", map[string]string{"manifests/init.pp": "class motd {\n  file { '/tmp/x': ensure => \n"})
	r := f.CLI(nil, deployArgs("--ref", "v2-syntax", "--tag", "segment=qa")...)
	if r.Code != 1 {
		t.Fatalf("want exit 1: %s", r)
	}
	for _, n := range []string{"agent-01", "agent-02"} {
		var line string
		for _, l := range strings.Split(r.Stdout, "\n") {
			if strings.HasPrefix(l, n+" ") {
				line = l
			}
		}
		if !strings.Contains(line, "compile_error") || !strings.Contains(strings.ToLower(line), "syntax error") {
			t.Fatalf("%s does not show the server's compile error: %q\n%s", n, line, r.Stdout)
		}
	}
}

func TestServerDisabledAndBusy(t *testing.T) {
	f := serverRig(t)
	if err := f.Puppet["agent-01"].Disable("maintenance by alice"); err != nil {
		t.Fatal(err)
	}
	release, err := f.Puppet["agent-02"].HoldRunLock()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	r := f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--format", "json", "--on-running", "fail")...)
	if r.Code != 1 {
		t.Fatalf("want exit 1: %s", r)
	}
	res := decodeResult(t, r)
	for _, n := range res.Nodes {
		switch n.Node {
		case "agent-01":
			if n.State != "disabled" || !strings.Contains(n.Message, "maintenance by alice") {
				t.Fatalf("agent-01: %+v", n)
			}
		case "agent-02":
			if n.State != "busy" {
				t.Fatalf("agent-02: %+v", n)
			}
		}
	}
	if f.File("agent-01") != "" || f.File("agent-02") != "" {
		t.Fatal("a disabled or busy agent applied the release")
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

// climbTo is a symlink target whose text stays inside the module (each d
// cancels a ..) but which the kernel resolves to abs, next to d -> .
func climbTo(abs string) string {
	return strings.Repeat("d/", 20) + strings.Repeat("../", 20) + strings.TrimPrefix(abs, "/")
}

// TestDeployRefusesLinksOutOfTheModule is the attack of issue 21 through a
// real master and a real git repository: tags whose trees carry symlinks
// that leave the module. Before the fix, the master wrote the commit id
// through .serfdeploy-commit into a file outside its release, created a
// new file outside, installed files/passwd -> ... for Puppet's file server
// to serve, and the deploy exited 0. Now each deploy fails naming the
// link, nothing outside is touched, nothing is installed, no agent runs;
// a module whose link stays inside deploys as before.
func TestDeployRefusesLinksOutOfTheModule(t *testing.T) {
	f := deployrig.Start(t, deployrig.Options{Bin: bin, Nodes: []deployrig.Node{
		{Name: "master-01", Master: true},
		{Name: "agent-01", Tags: map[string]string{"segment": "qa"}},
	}})
	outside := filepath.Join(f.Dir, "outside")
	victim := filepath.Join(outside, "passwd")
	created := filepath.Join(outside, "created")
	const victimText = "root:x:0:0:root:/root:/bin/bash\n"
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, []byte(victimText), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tag   string
		links map[string]string
		named string
	}{
		{"evil-commit-file", map[string]string{"d": ".", ".serfdeploy-commit": climbTo(victim)}, ".serfdeploy-commit"},
		{"evil-new-file", map[string]string{"d": ".", ".serfdeploy-commit": climbTo(created)}, ".serfdeploy-commit"},
		{"evil-served-files", map[string]string{"files/d": ".", "files/passwd": climbTo(victim), "files/rootfs": "/"}, "files/passwd"},
	} {
		t.Run(c.tag, func(t *testing.T) {
			for name, target := range c.links {
				p := filepath.Join(f.Repo.Dir, name)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.Symlink(target, p); err != nil {
					t.Fatal(err)
				}
			}
			f.Repo.Commit(c.tag, nil)
			for name := range c.links {
				os.Remove(filepath.Join(f.Repo.Dir, name)) // the next tag carries its own
			}

			r := f.CLI(nil, deployArgs("--ref", c.tag, "--tag", "segment=qa")...)
			t.Logf("%s", r)
			if r.Code != 2 {
				// Bad input that no retry fixes (a pipeline retries exit 5).
				t.Errorf("the deploy of %s exited %d, want 2", c.tag, r.Code)
			}
			if !strings.Contains(r.Stderr, c.named) {
				t.Errorf("no line names the refused link %s:\n%s", c.named, r)
			}
			if b, err := os.ReadFile(victim); err != nil || string(b) != victimText {
				t.Errorf("the file outside the release was changed: %q %v", b, err)
			}
			if _, err := os.Lstat(created); err == nil {
				t.Errorf("%s was created outside the release", created)
			}
			if _, err := os.Lstat(filepath.Join(f.ModulePath("production"), "motd")); err == nil {
				t.Errorf("the hostile module was installed")
			}
			if got := f.File("agent-01"); got != "" {
				t.Errorf("agent-01 ran after a refused sync: %q", got)
			}
		})
	}

	// Control: a link that resolves inside the module deploys, is kept as
	// a link, and the agent runs.
	if err := os.Symlink("real.txt", filepath.Join(f.Repo.Dir, "files", "alias.txt")); err != nil {
		t.Fatal(err)
	}
	f.Repo.Commit("inner-link", map[string]string{"files/real.txt": "real\n"})
	r := f.CLI(nil, deployArgs("--ref", "inner-link", "--tag", "segment=qa")...)
	if r.Code != 0 {
		t.Fatalf("a module with an inner link: %s", r)
	}
	alias := filepath.Join(f.ModulePath("production"), "motd", "files", "alias.txt")
	if info, err := os.Lstat(alias); err != nil || info.Mode()&os.ModeSymlink == 0 {
		t.Errorf("files/alias.txt is not kept as a link: %v", err)
	}
	if b, err := os.ReadFile(alias); err != nil || string(b) != "real\n" {
		t.Errorf("files/alias.txt reads %q %v", b, err)
	}
	if f.File("agent-01") == "" {
		t.Errorf("agent-01 did not run the module with an inner link")
	}
}

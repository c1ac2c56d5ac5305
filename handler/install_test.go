package handler

import (
	"archive/tar"
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func tarOf(t *testing.T, entries ...tar.Header) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		h := h
		body := ""
		if h.Typeflag == tar.TypeReg {
			body = "x"
			h.Size = 1
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	return &buf
}

func TestUntarRefusesEscapes(t *testing.T) {
	for _, h := range []tar.Header{
		{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "/etc/evil", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "manifests/../../evil", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc"},
		{Name: "dir/link", Typeflag: tar.TypeSymlink, Linkname: "../../etc"},
	} {
		dest := filepath.Join(t.TempDir(), "release")
		if err := untar(tarOf(t, h), dest); err == nil {
			t.Errorf("%s -> %q accepted", h.Name, h.Linkname)
		}
	}
	dest := filepath.Join(t.TempDir(), "release")
	err := untar(tarOf(t, tar.Header{Name: "manifests/", Typeflag: tar.TypeDir}, tar.Header{Name: "manifests/init.pp", Typeflag: tar.TypeReg, Mode: 0o644},
		tar.Header{Name: "files/link", Typeflag: tar.TypeSymlink, Linkname: "../manifests/init.pp"}), dest)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "files", "link")); err != nil || string(b) != "x" {
		t.Fatalf("inner symlink: %q %v", b, err)
	}
}

// TestUntarSymlinkChainStaysInside: d -> ., then d/e -> .. (which names
// look inside: d/.. is the release itself), then e/pwned, which through
// the links is the release's parent. Checks of the names as strings let
// it through and wrote outside the release; now d/e is refused, as an
// entry under a link, and os.Root would stop e/pwned anyway.
func TestUntarSymlinkChainStaysInside(t *testing.T) {
	parent := t.TempDir()
	dest := filepath.Join(parent, "release")
	err := untar(tarOf(t,
		tar.Header{Name: "d", Typeflag: tar.TypeSymlink, Linkname: "."},
		tar.Header{Name: "d/e", Typeflag: tar.TypeSymlink, Linkname: ".."},
		tar.Header{Name: "e/pwned", Typeflag: tar.TypeReg, Mode: 0o644},
	), dest)
	if _, serr := os.Lstat(filepath.Join(parent, "pwned")); serr == nil {
		t.Fatal("the archive wrote outside the release directory")
	}
	if err == nil || !strings.Contains(err.Error(), "d/e") {
		t.Fatalf("want a refusal naming d/e, got %v", err)
	}
}

func gitRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	run := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@localhost"}, args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	run("init", "-q", "-b", "main")
	os.MkdirAll(filepath.Join(dir, "manifests"), 0o755)
	os.WriteFile(filepath.Join(dir, "manifests", "init.pp"), []byte("class motd {}\n"), 0o644)
	run("add", "-A")
	run("commit", "-q", "-m", "v1")
	run("tag", "v1")
	return dir
}

func TestFetchModuleByTagBranchAndCommit(t *testing.T) {
	repo := gitRepo(t)
	out, _ := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output()
	commit := strings.TrimSpace(string(out))
	for _, ref := range []string{"v1", "main", commit, commit[:12]} {
		dest := filepath.Join(t.TempDir(), "release")
		got, err := fetchModule(context.Background(), repo, ref, dest, time.Minute)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if got != commit {
			t.Fatalf("%s: commit %s, want %s", ref, got, commit)
		}
		if _, err := os.Stat(filepath.Join(dest, "manifests", "init.pp")); err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if _, err := os.Stat(filepath.Join(dest, ".git")); err == nil {
			t.Fatalf("%s: the release holds a .git directory", ref)
		}
	}
	_, err := fetchModule(context.Background(), repo, "no-such-ref", filepath.Join(t.TempDir(), "r"), time.Minute)
	if err == nil || !strings.Contains(err.Error(), "no-such-ref") {
		t.Fatalf("bad ref: %v", err)
	}
}

// A compile that reads the module while releases are swapped in must always
// find a whole module: the old one or the new one.
func TestInstallModuleIsAtomic(t *testing.T) {
	base := t.TempDir()
	modulepath := filepath.Join(base, "modules")
	os.MkdirAll(modulepath, 0o755)
	// A module installed by hand first: swapped out, kept.
	hand := filepath.Join(modulepath, "motd", "manifests")
	os.MkdirAll(hand, 0o755)
	os.WriteFile(filepath.Join(hand, "init.pp"), []byte("hand"), 0o644)

	var releases []string
	for i := 0; i < 50; i++ {
		r := filepath.Join(base, "releases", "r"+string(rune('a'+i%26))+strings.Repeat("x", i/26))
		os.MkdirAll(filepath.Join(r, "manifests"), 0o755)
		os.WriteFile(filepath.Join(r, "manifests", "init.pp"), []byte(r), 0o644)
		releases = append(releases, r)
	}
	var stop atomic.Bool
	var misses, reads atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				reads.Add(1)
				if _, err := os.ReadFile(filepath.Join(modulepath, "motd", "manifests", "init.pp")); err != nil {
					misses.Add(1)
				}
			}
		}()
	}
	for i, r := range releases {
		if err := installModule(modulepath, "motd", r, filepath.Join(base, "releases", "before-"+string(rune('a'+i%26)))); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d reads during 50 installs", reads.Load())
	if misses.Load() != 0 {
		t.Fatalf("%d reads found no module mid-install", misses.Load())
	}
	b, _ := os.ReadFile(filepath.Join(modulepath, "motd", "manifests", "init.pp"))
	if string(b) != releases[len(releases)-1] {
		t.Fatalf("installed %q", b)
	}
	if b, err := os.ReadFile(filepath.Join(base, "releases", "before-a", "manifests", "init.pp")); err != nil || string(b) != "hand" {
		t.Fatalf("the hand-installed module was not kept: %q %v", b, err)
	}
	entries, _ := os.ReadDir(modulepath)
	if len(entries) != 1 {
		t.Fatalf("modulepath holds %v", entries)
	}
}

// TestFetchFromAHungServerTimesOut: a git server that accepts and never
// answers fails the fetch at master.git_timeout, naming the URL. Before,
// git had no limit and held the deploy until the CLI's timeout (exit 4
// instead of a failed code sync).
func TestFetchFromAHungServerTimesOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, say nothing
		}
	}()
	url := "http://" + l.Addr().String() + "/motd.git"
	done := make(chan error, 1)
	go func() {
		_, err := fetchModule(context.Background(), url, "v1", filepath.Join(t.TempDir(), "r"), time.Second)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "timed out after 1s") || !strings.Contains(err.Error(), url) {
			t.Fatalf("err %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("git fetch from a hung server was not bounded")
	}
}

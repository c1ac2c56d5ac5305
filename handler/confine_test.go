package handler

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The tests below give a master hostile module trees, as anyone who can
// push a tag can, and check that nothing outside the release is written,
// that the sync fails naming the entry, and that nothing is installed.

// escapeTo is a symlink target that reads as inside the module to any
// check of its text (each d cancels a ..) but that the kernel resolves to
// abs, when the link's directory holds d -> . (each d is that directory,
// then the ..s climb to /).
func escapeTo(abs string) string {
	return strings.Repeat("d/", 30) + strings.Repeat("../", 30) + strings.TrimPrefix(abs, "/")
}

// hostileMaster is a master whose module motd comes from a fresh git
// repository, with a victim file outside every directory serfdeploy owns.
type hostileMaster struct {
	n          *Node
	repo       string
	victim     string // a file that must keep its content
	newVictim  string // a path that must not come to exist
	modulepath string
}

const victimText = "root:x:0:0:root:/root:/bin/bash\n"

func newHostileMaster(t *testing.T) *hostileMaster {
	t.Helper()
	dir := t.TempDir()
	h := &hostileMaster{
		repo:       filepath.Join(dir, "git", "motd"),
		victim:     filepath.Join(dir, "outside", "victim"),
		newVictim:  filepath.Join(dir, "outside", "created"),
		modulepath: filepath.Join(dir, "code", "environments", "production", "modules"),
	}
	for _, d := range []string{h.repo, filepath.Dir(h.victim), h.modulepath} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(h.victim, []byte(victimText), 0o644); err != nil {
		t.Fatal(err)
	}
	h.git(t, "init", "-q", "-b", "main")
	cfgPath := filepath.Join(dir, "node.yaml")
	cfg := "role: master\nstate_dir: " + filepath.Join(dir, "state") + "\nmaster:\n  modulepath: " +
		filepath.Join(dir, "code", "environments", "{environment}", "modules") + "\n  modules:\n    motd: " + h.repo + "\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	h.n, err = NewNode(c, cfgPath, func(k string) string { return map[string]string{"SERF_SELF_NAME": "master-01"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *hostileMaster) git(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@localhost"}, args...)...)
	cmd.Dir = h.repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// commit replaces the work tree with files (name -> content) and links
// (name -> target), commits it and tags it.
func (h *hostileMaster) commit(t *testing.T, tag string, files, links map[string]string) {
	t.Helper()
	entries, _ := os.ReadDir(h.repo)
	for _, e := range entries {
		if e.Name() != ".git" {
			os.RemoveAll(filepath.Join(h.repo, e.Name()))
		}
	}
	for name, content := range files {
		p := filepath.Join(h.repo, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range links {
		p := filepath.Join(h.repo, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	h.git(t, "add", "-A")
	h.git(t, "commit", "-q", "--allow-empty", "-m", tag)
	h.git(t, "tag", "-f", tag)
}

func (h *hostileMaster) sync(tag string) (string, error) {
	return h.n.sync(context.Background(), &Record{ID: "deploy-" + tag, Module: "motd", Environment: "production", Ref: tag})
}

// untouched fails the test if anything outside the release changed, or if
// the module was installed.
func (h *hostileMaster) untouched(t *testing.T) {
	t.Helper()
	h.victimIntact(t)
	if _, err := os.Lstat(h.newVictim); err == nil {
		t.Errorf("%s was created outside the release", h.newVictim)
	}
	if _, err := os.Lstat(filepath.Join(h.modulepath, "motd")); err == nil {
		t.Errorf("the hostile module was installed")
	}
}

var initPP = map[string]string{"manifests/init.pp": "class motd {}\n"}

func TestSyncRefusesHostileTrees(t *testing.T) {
	cases := []struct {
		name  string
		links func(h *hostileMaster) map[string]string
		named string // the entry the error must name
	}{
		{"commit file links to a file outside", func(h *hostileMaster) map[string]string {
			return map[string]string{"d": ".", commitFile: escapeTo(h.victim)}
		}, commitFile},
		{"commit file links to a new path outside", func(h *hostileMaster) map[string]string {
			return map[string]string{"d": ".", commitFile: escapeTo(h.newVictim)}
		}, commitFile},
		{"commit file links plainly outside", func(h *hostileMaster) map[string]string {
			return map[string]string{commitFile: h.victim}
		}, commitFile},
		{"d/d/../.. chain", func(h *hostileMaster) map[string]string {
			return map[string]string{"files/d": ".", "files/passwd": escapeTo(h.victim)}
		}, "files/passwd"},
		{"short d/d/../.. chain to the release's parent", func(h *hostileMaster) map[string]string {
			// Within os.Root's 8 links, so refused as leaving, not as a loop.
			return map[string]string{"files/d": ".", "files/releases": "d/d/../../.."}
		}, "files/releases -> d/d/../../.. (leaves the module)"},
		{"absolute link", func(h *hostileMaster) map[string]string {
			return map[string]string{"files/passwd": h.victim}
		}, "files/passwd"},
		{"link to /", func(h *hostileMaster) map[string]string {
			return map[string]string{"files/rootfs": "/"}
		}, "files/rootfs"},
		{"relative link out", func(h *hostileMaster) map[string]string {
			return map[string]string{"files/up": "../../outside"}
		}, "files/up"},
		{"through a link to a directory", func(h *hostileMaster) map[string]string {
			// files/dir reads as files itself and is / for the kernel;
			// files/passwd reads as files/dir/... and is the victim.
			return map[string]string{"files/d": ".", "files/dir": strings.Repeat("d/", 30) + strings.Repeat("../", 30),
				"files/passwd": "dir/" + strings.TrimPrefix(h.victim, "/")}
		}, "files/passwd"},
		{"dangling link", func(h *hostileMaster) map[string]string {
			return map[string]string{"files/gone": "nothing/../../../x"}
		}, "files/gone"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHostileMaster(t)
			h.commit(t, "evil", initPP, c.links(h))
			commit, err := h.sync("evil")
			if err == nil {
				t.Errorf("the hostile tree was installed (commit %s)", commit)
			}
			t.Logf("refused: %v", err)
			if err != nil && !strings.Contains(err.Error(), c.named) {
				t.Errorf("the error does not name %s: %v", c.named, err)
			}
			h.untouched(t)
			if _, err := os.Lstat(filepath.Join(h.n.st.dir, "releases", "production", "motd", "deploy-evil")); err == nil {
				t.Errorf("the refused release was left behind")
			}
		})
	}
}

// A link that resolves inside the module is the module's own business
// (spec fixtures, a shared file under two names): it is kept as a link,
// and the commit file is serfdeploy's, a regular file.
func TestSyncKeepsLinksInsideTheModule(t *testing.T) {
	h := newHostileMaster(t)
	h.commit(t, "good", map[string]string{"manifests/init.pp": "class motd {}\n", "files/real.txt": "real\n"},
		map[string]string{"files/alias.txt": "real.txt", "files/manifests": "../manifests", "files/via": "manifests/init.pp",
			"spec/fixtures/modules/motd": "../../..", "files/d": "."})
	commit, err := h.sync("good")
	if err != nil {
		t.Fatal(err)
	}
	installed := filepath.Join(h.modulepath, "motd")
	for name, want := range map[string]string{"files/alias.txt": "real\n", "files/via": "class motd {}\n", "spec/fixtures/modules/motd/files/d/real.txt": "real\n"} {
		if b, err := os.ReadFile(filepath.Join(installed, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v", name, b, err)
		}
	}
	if info, err := os.Lstat(filepath.Join(installed, "files", "alias.txt")); err != nil || info.Mode()&os.ModeSymlink == 0 {
		t.Errorf("files/alias.txt is not kept as a link: %v", err)
	}
	info, err := os.Lstat(filepath.Join(installed, commitFile))
	if err != nil || !info.Mode().IsRegular() {
		t.Fatalf("%s: %v %v", commitFile, info, err)
	}
	if b, _ := os.ReadFile(filepath.Join(installed, commitFile)); string(b) != commit+"\n" {
		t.Errorf("%s holds %q, want %s", commitFile, b, commit)
	}
	h.victimIntact(t)
}

func (h *hostileMaster) victimIntact(t *testing.T) {
	t.Helper()
	if b, err := os.ReadFile(h.victim); err != nil || string(b) != victimText {
		t.Errorf("the victim outside the release was changed: %q %v", b, err)
	}
}

// Archives git archive never makes, given to the unpack directly.
func TestUntarRefusesHostileArchives(t *testing.T) {
	parent := t.TempDir()
	victim := filepath.Join(parent, "victim")
	os.WriteFile(victim, []byte(victimText), 0o644)
	created := filepath.Join(parent, "created")
	cases := []struct {
		name    string
		entries []tar.Header
		named   string
	}{
		{"hard link to a file outside", []tar.Header{
			{Name: "files/passwd", Typeflag: tar.TypeLink, Linkname: victim},
		}, "files/passwd"},
		{"hard link inside", []tar.Header{
			{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644},
			{Name: "b", Typeflag: tar.TypeLink, Linkname: "a"},
		}, "b"},
		{"file written through a link to a directory", []tar.Header{
			{Name: "files/d", Typeflag: tar.TypeSymlink, Linkname: "."},
			{Name: "files/dir", Typeflag: tar.TypeSymlink, Linkname: strings.Repeat("d/", 30) + strings.Repeat("../", 30)},
			{Name: "files/dir/" + strings.TrimPrefix(created, "/"), Typeflag: tar.TypeReg, Mode: 0o644},
		}, "files/dir"},
		{"d/d/../.. chain", []tar.Header{
			{Name: "d", Typeflag: tar.TypeSymlink, Linkname: "."},
			{Name: "passwd", Typeflag: tar.TypeSymlink, Linkname: escapeTo(victim)},
		}, "passwd"},
		{"device", []tar.Header{
			{Name: "files/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666},
		}, "files/null"},
		{"sparse file", []tar.Header{
			{Name: "files/big", Typeflag: tar.TypeGNUSparse, Mode: 0o644, Format: tar.FormatGNU},
		}, "files/big"},
		{"commit file as a regular file", []tar.Header{
			{Name: commitFile, Typeflag: tar.TypeReg, Mode: 0o644},
		}, commitFile},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "a", "b", "release")
			err := untar(tarOf(t, c.entries...), dest)
			if err == nil || !strings.Contains(err.Error(), c.named) {
				t.Errorf("want a refusal naming %s, got %v", c.named, err)
			}
			if b, rerr := os.ReadFile(victim); rerr != nil || string(b) != victimText {
				t.Errorf("the victim was changed: %q %v", b, rerr)
			}
			if _, serr := os.Lstat(created); serr == nil {
				t.Errorf("%s was created", created)
			}
		})
	}
}

// The config_version script reads only commit files serfdeploy wrote: a
// link of that name (left by a release installed before the unpack
// refused them) is not read through.
func TestConfigVersionSkipsLinkedCommitFiles(t *testing.T) {
	dir := t.TempDir()
	env := filepath.Join(dir, "production")
	modulepath := filepath.Join(env, "modules")
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("s3cret\n"), 0o600)
	for m, link := range map[string]bool{"good": false, "evil": true} {
		os.MkdirAll(filepath.Join(modulepath, m), 0o755)
		p := filepath.Join(modulepath, m, commitFile)
		var err error
		if link {
			err = os.Symlink(secret, p)
		} else {
			err = os.WriteFile(p, []byte("abc123\n"), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	n := testNode(t, "/bin/true")
	if err := n.ensureConfigVersion(env, modulepath); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(env, ".serfdeploy", "config_version")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "good=abc123" {
		t.Fatalf("config_version printed %q, want good=abc123 only", got)
	}
}

// FuzzUntar: whatever archive arrives, nothing is written beside the
// release (go test -run '^$' -fuzz '^FuzzUntar$' -fuzztime 60s ./handler/).
func FuzzUntar(f *testing.F) {
	seed := func(entries ...tar.Header) {
		var t testing.T
		f.Add(tarOf(&t, entries...).Bytes())
	}
	seed(tar.Header{Name: "d", Typeflag: tar.TypeSymlink, Linkname: "."},
		tar.Header{Name: "d/e", Typeflag: tar.TypeSymlink, Linkname: ".."},
		tar.Header{Name: "e/pwned", Typeflag: tar.TypeReg, Mode: 0o644})
	seed(tar.Header{Name: "d", Typeflag: tar.TypeSymlink, Linkname: "."},
		tar.Header{Name: "x", Typeflag: tar.TypeSymlink, Linkname: "d/d/../../../victim"},
		tar.Header{Name: "x", Typeflag: tar.TypeReg, Mode: 0o644})
	seed(tar.Header{Name: "up", Typeflag: tar.TypeSymlink, Linkname: ".."},
		tar.Header{Name: "up/pwned", Typeflag: tar.TypeReg, Mode: 0o644},
		tar.Header{Name: "b", Typeflag: tar.TypeLink, Linkname: "../victim"})
	base := f.TempDir()
	f.Fuzz(func(t *testing.T, archive []byte) {
		// One directory per input under f's: t.TempDir in every input
		// slows the fuzzer to a crawl.
		parent, err := os.MkdirTemp(base, "")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(parent)
		victim := filepath.Join(parent, "victim")
		os.WriteFile(victim, []byte(victimText), 0o644)
		untar(bytes.NewReader(archive), filepath.Join(parent, "release"))
		entries, _ := os.ReadDir(parent)
		for _, e := range entries {
			if e.Name() != "victim" && e.Name() != "release" {
				t.Fatalf("the archive made %s beside the release", e.Name())
			}
		}
		if b, err := os.ReadFile(victim); err != nil || string(b) != victimText {
			t.Fatalf("the victim beside the release changed: %q %v", b, err)
		}
	})
}

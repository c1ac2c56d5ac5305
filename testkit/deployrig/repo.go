package deployrig

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Repo is a real git repository holding the sample module `motd`.
type Repo struct {
	t   testing.TB
	Dir string
}

// NewRepo creates an empty repository at dir.
func NewRepo(t testing.TB, dir string) *Repo {
	t.Helper()
	must(t, os.MkdirAll(dir, 0o755))
	r := &Repo{t: t, Dir: dir}
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *Repo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=test", "-c", "user.email=test@localhost"}, args...)...)
	cmd.Dir = r.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// CommitModule commits a version of the module and tags it with version.
// Each node's file under filesDir says "motd VERSION on NODE". extra is more
// Puppet code inside the class (e.g. a resource that fails on one node).
func (r *Repo) CommitModule(version, filesDir, extra string) string {
	r.t.Helper()
	pp := fmt.Sprintf(`class motd {
  file { "%s/${trusted['certname']}.motd":
    ensure  => file,
    content => "motd %s on ${trusted['certname']}\n",
  }
%s
}
`, filesDir, version, extra)
	return r.Commit(version, map[string]string{"manifests/init.pp": pp})
}

// Commit writes files, commits them and tags the commit with tag (if not
// empty); it returns the commit id.
func (r *Repo) Commit(tag string, files map[string]string) string {
	r.t.Helper()
	for name, content := range files {
		path := filepath.Join(r.Dir, name)
		must(r.t, os.MkdirAll(filepath.Dir(path), 0o755))
		must(r.t, os.WriteFile(path, []byte(content), 0o644))
	}
	r.git("add", "-A")
	r.git("commit", "-q", "-m", "version "+tag)
	if tag != "" {
		r.git("tag", "-f", tag)
	}
	return r.git("rev-parse", "HEAD")
}

// Rev is the commit a ref names.
func (r *Repo) Rev(ref string) string {
	r.t.Helper()
	return r.git("rev-parse", ref+"^{commit}")
}

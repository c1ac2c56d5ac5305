// Command package builds serfdeploy's Debian package from what
// scripts/package.sh has put in dist/: the static binary, its man page and
// its shell completions. It is a build tool, never shipped:
//
//	go run ./build/package -dist dist -version 1.2.3-1
//
// It writes dist/serfdeploy_VERSION_ARCH.deb with nfpm and prints its path.
// The changelog, the copyright file (with the license of every Go module
// linked into the binary, read from its build info) and the gzipped man
// page are made here; the default node.yaml, the lintian overrides and the
// maintainer scripts are files beside this one.
package main

import (
	"bytes"
	"compress/gzip"
	"debug/buildinfo"
	"debug/elf"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// nodeYAML is /etc/serfdeploy/node.yaml: every setting commented out at
// the handler's default (package_test.go checks that it says the truth).
//
//go:embed node.yaml
var nodeYAML []byte

//go:embed lintian-overrides
var lintianOverrides []byte

//go:embed postinst
var postinst []byte

//go:embed postrm
var postrm []byte

const description = `ship Puppet code and drive Puppet runs through serf
serfdeploy ships Puppet modules to the Puppet masters of a fleet and drives
and watches the Puppet runs that follow through HashiCorp Serf's gossip,
with no broker: it replaces MCollective's "mco puppet runonce" and "mco
puppet status" for release engineers and CI jobs that gate on its exit code.
.
This package installs the binary, serf's event handler as well as the
command line tool, a default node configuration, a systemd drop-in for
Debian's serf unit, shell completions and a man page. Run
"serfdeploy install" on each node to register the handler with serf.`

type options struct {
	dist       string // inputs, and where the .deb goes
	root       string // the checkout, for scripts/systemd
	version    string // Debian version: upstream-revision
	maintainer string
}

func main() {
	var o options
	flag.StringVar(&o.dist, "dist", "dist", "directory with serfdeploy, serfdeploy.1, serfdeploy.bash-completion and _serfdeploy; the .deb is written there")
	flag.StringVar(&o.root, "root", ".", "the serfdeploy checkout")
	flag.StringVar(&o.version, "version", "", "the package version, UPSTREAM-REVISION (e.g. 1.2.3-1)")
	flag.StringVar(&o.maintainer, "maintainer", "serfdeploy maintainers <maintainers@serfdeploy.example.org>", "the Maintainer field and the changelog's signer")
	flag.Parse()
	path, err := build(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "package:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}

// build writes the package and returns its path.
func build(o options) (string, error) {
	upstream, revision, ok := cutLast(o.version, "-")
	if !ok || upstream == "" || revision == "" {
		// A revision makes it a non-native package, whose changelog is
		// changelog.Debian.gz, as lintian expects of one built outside Debian.
		return "", fmt.Errorf("-version %q: want UPSTREAM-REVISION, e.g. 1.2.3-1", o.version)
	}
	bin := filepath.Join(o.dist, "serfdeploy")
	if err := checkStatic(bin); err != nil {
		return "", err
	}
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "", fmt.Errorf("reading %s's build info: %w", bin, err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	arch := settings["GOARCH"] // Go's amd64, arm64... are Debian's names too
	if arch == "" {
		return "", fmt.Errorf("%s's build info names no GOARCH", bin)
	}
	// Every date in the package is the commit's, so that a rebuild of one
	// commit gives the same files.
	when := time.Now().UTC()
	if t, err := time.Parse(time.RFC3339, settings["vcs.time"]); err == nil {
		when = t.UTC()
	}

	stage, err := os.MkdirTemp("", "serfdeploy-package-")
	if err != nil {
		return "", fmt.Errorf("staging directory: %w", err)
	}
	defer os.RemoveAll(stage)
	staged := func(name string, data []byte) (string, error) {
		p := filepath.Join(stage, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return "", fmt.Errorf("staging %s: %w", name, err)
		}
		return p, nil
	}

	man, err := os.ReadFile(filepath.Join(o.dist, "serfdeploy.1"))
	if err != nil {
		return "", fmt.Errorf("the man page (scripts/package.sh makes it): %w", err)
	}
	manGz, err := staged("serfdeploy.1.gz", gzipped(man))
	if err != nil {
		return "", err
	}
	changes := changelog(o.version, o.maintainer, settings["vcs.revision"], settings["vcs.modified"] == "true", when)
	changelogGz, err := staged("changelog.Debian.gz", gzipped(changes))
	if err != nil {
		return "", err
	}
	copyrightText, err := copyright(bi)
	if err != nil {
		return "", err
	}
	copyrightFile, err := staged("copyright", copyrightText)
	if err != nil {
		return "", err
	}
	nodeConfig, err := staged("node.yaml", nodeYAML)
	if err != nil {
		return "", err
	}
	overrides, err := staged("lintian-overrides", lintianOverrides)
	if err != nil {
		return "", err
	}
	postinstFile, err := staged("postinst", postinst)
	if err != nil {
		return "", err
	}
	postrmFile, err := staged("postrm", postrm)
	if err != nil {
		return "", err
	}

	file := func(src, dst string, mode os.FileMode) *files.Content {
		return &files.Content{Source: src, Destination: dst, FileInfo: &files.ContentFileInfo{Mode: mode, MTime: when}}
	}
	conffile := func(src, dst string) *files.Content {
		c := file(src, dst, 0o644)
		c.Type = files.TypeConfig
		return c
	}
	info := &nfpm.Info{
		Name:          "serfdeploy",
		Arch:          arch,
		Platform:      "linux",
		Version:       upstream,
		Release:       revision,
		VersionSchema: "none", // a Debian version as given, not parsed as semver
		Section:       "admin",
		Priority:      "optional",
		Maintainer:    o.maintainer,
		Description:   description,
		MTime:         when,
		Overridables: nfpm.Overridables{
			Depends:    []string{"serf"},
			Recommends: []string{"puppet-agent | puppet"},
			Contents: files.Contents{
				file(bin, "/usr/bin/serfdeploy", 0o755),
				// Under /etc, so conffiles: an operator's edits survive an
				// upgrade. `serfdeploy install` writes the same drop-in.
				conffile(filepath.Join(o.root, "scripts", "systemd", "serf.service.d", "serfdeploy.conf"), "/etc/systemd/system/serf.service.d/serfdeploy.conf"),
				conffile(nodeConfig, "/etc/serfdeploy/node.yaml"),
				file(filepath.Join(o.dist, "serfdeploy.bash-completion"), "/usr/share/bash-completion/completions/serfdeploy", 0o644),
				file(filepath.Join(o.dist, "_serfdeploy"), "/usr/share/zsh/vendor-completions/_serfdeploy", 0o644),
				file(manGz, "/usr/share/man/man1/serfdeploy.1.gz", 0o644),
				file(copyrightFile, "/usr/share/doc/serfdeploy/copyright", 0o644),
				file(changelogGz, "/usr/share/doc/serfdeploy/changelog.Debian.gz", 0o644),
				file(overrides, "/usr/share/lintian/overrides/serfdeploy", 0o644),
			},
			Scripts: nfpm.Scripts{PostInstall: postinstFile, PostRemove: postrmFile},
			Deb:     nfpm.Deb{Compression: "xz"},
		},
	}
	out := filepath.Join(o.dist, deb.Default.ConventionalFileName(info))
	f, err := os.Create(out)
	if err != nil {
		return "", fmt.Errorf("creating the package: %w", err)
	}
	if err := deb.Default.Package(info, f); err != nil {
		f.Close()
		os.Remove(out)
		return "", fmt.Errorf("building %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("writing %s: %w", out, err)
	}
	return out, nil
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// checkStatic refuses a binary with an ELF interpreter (PT_INTERP): one
// linked against the build machine's glibc fails on an older distribution.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("the binary (scripts/package.sh builds it): %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked (it has an ELF interpreter): build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}

// gzipped compresses the way lintian wants it: best compression, no file
// name and no time stamp in the header.
func gzipped(data []byte) []byte {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression) // a valid level: no error
	w.Write(data)
	w.Close()
	return b.Bytes()
}

// changelog is a one-entry Debian changelog naming the commit built.
func changelog(version, maintainer, commit string, modified bool, when time.Time) []byte {
	// Lines of at most 80 columns (lintian's debian-changelog-line-too-long).
	what := "a tree without version control information."
	if commit != "" {
		what = "commit " + commit + "."
		if modified {
			what = "commit " + commit + " (with uncommitted changes)."
		}
	}
	return fmt.Appendf(nil, "serfdeploy (%s) unstable; urgency=medium\n\n  * Built from serfdeploy's git repository,\n    %s\n\n -- %s  %s\n",
		version, what, maintainer, when.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
}

// copyright says whose the code is and carries the license of the Go
// standard library and of every module linked into the binary: a static
// binary ships their code, so it ships their notices too.
func copyright(bi *buildinfo.BuildInfo) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`serfdeploy

Copyright: the serfdeploy authors.

serfdeploy's own code carries no license yet: its authors reserve all
rights. The binary /usr/bin/serfdeploy is statically linked; it contains
the Go standard library and the Go modules listed below, each under the
license that follows its name.
`)
	goroot, err := goEnv("GOROOT")
	if err != nil {
		return nil, err
	}
	if err := appendLicense(&b, "The Go standard library, "+bi.GoVersion, filepath.Join(goroot, "LICENSE")); err != nil {
		return nil, err
	}
	modcache, err := goEnv("GOMODCACHE")
	if err != nil {
		return nil, err
	}
	for _, m := range bi.Deps {
		if m.Replace != nil {
			m = m.Replace
		}
		dir := filepath.Join(modcache, escapeModulePath(m.Path)+"@"+m.Version)
		lic, err := findLicense(dir)
		if err != nil {
			return nil, fmt.Errorf("the license of %s %s: %w", m.Path, m.Version, err)
		}
		if err := appendLicense(&b, m.Path+" "+m.Version, lic); err != nil {
			return nil, err
		}
		// Apache-2.0, section 4(d): a NOTICE file goes along.
		if notice, err := os.ReadFile(filepath.Join(dir, "NOTICE")); err == nil {
			fmt.Fprintf(&b, "\nNOTICE:\n%s\n", bytes.TrimRight(notice, "\n \t"))
		}
	}
	return b.Bytes(), nil
}

// commonLicenses are license texts Debian ships in /usr/share/common-licenses:
// the copyright file refers to them instead of repeating them (lintian's
// copyright-file-contains-full-apache-2-license), keyed by a line of the text.
var commonLicenses = []struct{ marker, name string }{
	{"Apache License", "Apache-2.0"},
	{"Mozilla Public License Version 2.0", "MPL-2.0"},
	{"Mozilla Public License, version 2.0", "MPL-2.0"},
}

func appendLicense(b *bytes.Buffer, what, path string) error {
	text, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("the license of %s: %w", what, err)
	}
	text = bytes.TrimRight(text, "\n \t")
	head := text[:min(len(text), 300)]
	for _, l := range commonLicenses {
		if bytes.Contains(head, []byte(l.marker)) {
			text = fmt.Appendf(nil, "License: %s; its text is in /usr/share/common-licenses/%s.", l.name, l.name)
			break
		}
	}
	fmt.Fprintf(b, "\n----------------------------------------------------------------------\n%s\n\n%s\n", what, text)
	return nil
}

// findLicense finds a module's license file in its module cache directory.
func findLicense(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("module source not in the module cache (go mod download fetches it): %w", err)
	}
	for _, e := range entries {
		n := strings.ToUpper(e.Name())
		if !e.IsDir() && (strings.HasPrefix(n, "LICENSE") || strings.HasPrefix(n, "LICENCE") || strings.HasPrefix(n, "COPYING")) {
			return filepath.Join(dir, e.Name()), nil
		}
	}
	return "", errors.New("no LICENSE or COPYING file in " + dir)
}

// escapeModulePath is the module cache's spelling of a path: an upper-case
// letter is "!" and the lower-case letter (golang.org/x/mod/module.EscapePath).
func escapeModulePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func goEnv(name string) (string, error) {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/serfdeploy/serfdeploy/handler"
)

func loadConfig(t *testing.T, data []byte) *handler.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := handler.LoadConfig(path)
	if err != nil {
		t.Fatalf("handler.LoadConfig: %v\n%s", err, data)
	}
	return cfg
}

// settingLine is a commented-out setting of node.yaml ("#key: value" or
// "#  nested: value"); prose comments have one space after the "#".
var settingLine = regexp.MustCompile(`(?m)^#(\S|  )`)

func TestNodeYAMLLoadsAsDefaults(t *testing.T) {
	defaults := loadConfig(t, nil)
	if got := loadConfig(t, nodeYAML); !reflect.DeepEqual(got, defaults) {
		t.Fatalf("the packaged node.yaml loads as\n%+v\nnot as the defaults\n%+v", got, defaults)
	}
}

// The commented settings say the defaults truthfully, and name every
// setting the handler has: with the comment marks taken away, the file
// loads as the defaults, key for key.
func TestNodeYAMLCommentsAreTheDefaults(t *testing.T) {
	uncommented := settingLine.ReplaceAll(nodeYAML, []byte("$1"))
	defaults := loadConfig(t, nil)
	if got := loadConfig(t, uncommented); !reflect.DeepEqual(got, defaults) {
		t.Fatalf("node.yaml's commented settings are not the handler's defaults:\ngot  %+v\nwant %+v", got, defaults)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(uncommented, &doc); err != nil {
		t.Fatal(err)
	}
	missing := missingKeys(reflect.TypeOf(handler.Config{}), doc, "")
	if len(missing) > 0 {
		t.Fatalf("node.yaml does not show these settings of handler.Config: %v", missing)
	}
}

// missingKeys lists the yaml keys of struct type typ absent from doc.
func missingKeys(typ reflect.Type, doc map[string]any, prefix string) []string {
	var out []string
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "" || key == "-" {
			continue
		}
		v, ok := doc[key]
		if !ok {
			out = append(out, prefix+key)
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == typ.PkgPath() {
			sub, _ := v.(map[string]any)
			out = append(out, missingKeys(f.Type, sub, prefix+key+".")...)
		}
	}
	return out
}

func TestCheckStatic(t *testing.T) {
	if err := checkStatic("/bin/sh"); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Fatalf("/bin/sh passed as static: %v", err)
	}
	if err := checkStatic(staticBinary(t)); err != nil {
		t.Fatal(err)
	}
}

// staticBinary builds a small program without cgo, as package.sh builds
// serfdeploy.
func staticBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "serfdeploy")
	cmd := exec.Command("go", "build", "-o", out, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, b)
	}
	return out
}

// TestBuild makes a package from a stand-in dist/ and reads it back with
// dpkg-deb: every file where the brief puts it, the two files under /etc
// as conffiles, and the relations.
func TestBuild(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("no dpkg-deb")
	}
	dist := t.TempDir()
	bin := staticBinary(t)
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{
		"serfdeploy":                 data,
		"serfdeploy.1":               []byte(".TH serfdeploy 1\n"),
		"serfdeploy.bash-completion": []byte("complete -F _serfdeploy serfdeploy\n"),
		"_serfdeploy":                []byte("#compdef serfdeploy\n"),
	} {
		if err := os.WriteFile(filepath.Join(dist, name), content, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := build(options{dist: dist, root: "../..", version: "1.2.3"}); err == nil {
		t.Fatal("a version without a Debian revision was taken")
	}
	deb, err := build(options{dist: dist, root: "../..", version: "1.2.3+git5.gabc-1", maintainer: "M <m@example.org>"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(deb), "serfdeploy_1.2.3+git5.gabc-1_") {
		t.Fatalf("package named %s", deb)
	}
	dpkgDeb := func(args ...string) string {
		out, err := exec.Command("dpkg-deb", append(args, deb)...).Output()
		if err != nil {
			t.Fatalf("dpkg-deb %v: %v", args, err)
		}
		return string(out)
	}
	control := dpkgDeb("-f")
	for _, want := range []string{"Package: serfdeploy\n", "Version: 1.2.3+git5.gabc-1\n", "Depends: serf\n", "Recommends: puppet-agent | puppet\n", "Maintainer: M <m@example.org>\n"} {
		if !strings.Contains(control, want) {
			t.Errorf("control lacks %q:\n%s", want, control)
		}
	}
	listing := dpkgDeb("-c")
	for _, want := range []string{
		"-rwxr-xr-x root/root .* ./usr/bin/serfdeploy\n",
		"-rw-r--r-- root/root .* ./etc/systemd/system/serf.service.d/serfdeploy.conf\n",
		"-rw-r--r-- root/root .* ./etc/serfdeploy/node.yaml\n",
		" ./usr/share/bash-completion/completions/serfdeploy\n",
		" ./usr/share/zsh/vendor-completions/_serfdeploy\n",
		" ./usr/share/man/man1/serfdeploy.1.gz\n",
		" ./usr/share/doc/serfdeploy/copyright\n",
		" ./usr/share/doc/serfdeploy/changelog.Debian.gz\n",
		" ./usr/share/lintian/overrides/serfdeploy\n",
	} {
		if !regexp.MustCompile(want).MatchString(listing) {
			t.Errorf("package lacks %q:\n%s", want, listing)
		}
	}
	conffiles, err := exec.Command("dpkg-deb", "--info", deb, "conffiles").Output()
	if err != nil {
		t.Fatalf("dpkg-deb --info: %v", err)
	}
	if got := string(conffiles); got != "/etc/serfdeploy/node.yaml\n/etc/systemd/system/serf.service.d/serfdeploy.conf\n" {
		t.Errorf("conffiles: %q", got)
	}
	x := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", deb, x).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v: %s", err, out)
	}
	dropIn, _ := os.ReadFile("../../scripts/systemd/serf.service.d/serfdeploy.conf")
	if got, _ := os.ReadFile(filepath.Join(x, "etc/systemd/system/serf.service.d/serfdeploy.conf")); len(dropIn) == 0 || !bytes.Equal(got, dropIn) {
		t.Error("the packaged drop-in is not scripts/systemd/serf.service.d/serfdeploy.conf")
	}
	if got := gunzip(t, filepath.Join(x, "usr/share/man/man1/serfdeploy.1.gz")); got != ".TH serfdeploy 1\n" {
		t.Errorf("man page: %q", got)
	}
	changes := gunzip(t, filepath.Join(x, "usr/share/doc/serfdeploy/changelog.Debian.gz"))
	if !strings.HasPrefix(changes, "serfdeploy (1.2.3+git5.gabc-1) unstable; urgency=medium\n") || !strings.Contains(changes, "\n -- M <m@example.org>  ") {
		t.Errorf("changelog:\n%s", changes)
	}
	copyrightText, _ := os.ReadFile(filepath.Join(x, "usr/share/doc/serfdeploy/copyright"))
	if !strings.Contains(string(copyrightText), "The Go standard library") {
		t.Errorf("copyright lacks Go's license:\n%s", copyrightText)
	}
}

func gunzip(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

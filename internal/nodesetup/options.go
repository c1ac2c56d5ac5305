package nodesetup

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"

	"github.com/serfdeploy/serfdeploy/handler"
	"github.com/serfdeploy/serfdeploy/protocol"
)

// Options are what `serfdeploy install` was given. A zero field means "not
// given": what the files already say is kept.
type Options struct {
	// Root is where /etc and /var are: "/" on a node, a temporary
	// directory in tests. Every path, also those written into the files,
	// is under it.
	Root string
	// Binary is the serfdeploy serf runs as its handler; "" is
	// Root/usr/local/bin/serfdeploy, where scripts/install.sh puts it.
	Binary string

	NodeName   string            // serf node_name; kept, or the host name on a first install
	Role       string            // handler.RoleMaster or handler.RoleAgent; agent on a first install
	Tags       map[string]string // serf tags to set
	RemoveTags []string          // serf tags to remove
	Join       []string          // serf retry_join addresses (replace the list)
	RPCAuth    string            // serf rpc_auth and node.yaml serf.rpc_auth (secret)
	EncryptKey string            // gossip key: the keyring's primary (secret)

	LogURL        string            // node.yaml logging.url
	GitURL        string            // node.yaml master.git_url
	Modules       map[string]string // node.yaml master.modules entries to set
	PuppetCommand []string          // node.yaml puppet.command
	// PuppetSummaryFile and PuppetStateDir are node.yaml's
	// puppet.summary_file and puppet.state_dir: Puppet's lastrunfile and
	// statedir (`puppet config print lastrunfile statedir`), which the
	// handler's defaults take from Debian's Puppet.
	PuppetSummaryFile string
	PuppetStateDir    string

	// Systemd writes the drop-in for Debian's serf unit and runs
	// `systemctl daemon-reload` when it changed and systemd runs.
	Systemd bool
}

// InputError is input install refuses (exit 2); nothing was written.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// safePath is a path serf can put in a /bin/sh -c command line as is.
var safePath = regexp.MustCompile(`^/[A-Za-z0-9_./+@:-]*$`)

// Validate checks everything given before any file is touched. Its errors
// are the user's input (exit 2) and never quote a secret.
func (o *Options) Validate() error {
	if o.Root == "" {
		o.Root = "/"
	}
	if !filepath.IsAbs(o.Root) {
		return fmt.Errorf("--root %q must be an absolute path", o.Root)
	}
	o.Root = filepath.Clean(o.Root)
	if o.Binary == "" {
		o.Binary = filepath.Join(o.Root, "usr/local/bin/serfdeploy")
	}
	for _, p := range []string{o.Root, o.Binary} {
		if !safePath.MatchString(p) {
			return fmt.Errorf("path %q: serf runs the handler through /bin/sh, so an absolute path of A-Z a-z 0-9 _ . / + @ : - only", p)
		}
	}
	switch o.Role {
	case "", handler.RoleMaster, handler.RoleAgent:
	default:
		return fmt.Errorf("--role %q: use master or agent", o.Role)
	}
	if o.NodeName != "" {
		if err := protocol.ValidNode(o.NodeName); err != nil {
			return err
		}
	}
	for k, v := range o.Tags {
		if err := ValidTag(k, v); err != nil {
			return err
		}
		if k == roleTagKey {
			return errors.New("the tag role is set by --role (role=puppetmaster on masters, none on agents)")
		}
	}
	for _, k := range o.RemoveTags {
		if err := ValidTag(k, ""); err != nil {
			return err
		}
		if k == roleTagKey {
			return errors.New("the tag role is set by --role")
		}
		if _, ok := o.Tags[k]; ok {
			return fmt.Errorf("tag %s is both set and removed", k)
		}
	}
	for _, j := range o.Join {
		if j == "" || hasControlOrSpace(j) {
			return fmt.Errorf("--join %q: a host or host:port", j)
		}
	}
	if o.RPCAuth != "" && hasControl(o.RPCAuth) {
		// Never echo it: it is a secret.
		return errors.New("--rpc-auth holds a control character (a newline?); give the key alone")
	}
	if o.EncryptKey != "" {
		b, err := base64.StdEncoding.DecodeString(o.EncryptKey)
		if n := len(b); err != nil || (n != 16 && n != 24 && n != 32) {
			return errors.New("--encrypt-key is not a base64 key of 16, 24 or 32 bytes (make one with: serf keygen)")
		}
	}
	if o.LogURL != "" {
		u, err := url.Parse(o.LogURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || hasControlOrSpace(o.LogURL) {
			return fmt.Errorf("--log-url %q: the Loki base URL, e.g. http://loki:3100", o.LogURL)
		}
	}
	if o.GitURL != "" && hasControlOrSpace(o.GitURL) {
		return fmt.Errorf("--git-url %q: a git URL, {module} replaced by the module's name", o.GitURL)
	}
	for m, u := range o.Modules {
		if err := protocol.ValidModule(m); err != nil {
			return fmt.Errorf("--module: %w", err)
		}
		if u == "" || hasControlOrSpace(u) {
			return fmt.Errorf("--module %s=%q: a git URL", m, u)
		}
	}
	for _, f := range []string{o.PuppetSummaryFile, o.PuppetStateDir} {
		if f != "" && (!filepath.IsAbs(f) || hasControl(f)) {
			return fmt.Errorf("%q: Puppet's lastrunfile and statedir are absolute paths (puppet config print lastrunfile statedir)", f)
		}
	}
	for _, a := range o.PuppetCommand {
		if hasControl(a) {
			return errors.New("--puppet-command holds a control character")
		}
	}
	return nil
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

func hasControlOrSpace(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0
}

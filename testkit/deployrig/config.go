package deployrig

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// NodeConfig is one node's serfdeploy handler configuration as the test
// rigs and bench/oracle write it: its own state, the module motd from
// a local git repository, a Puppet command of the caller's choosing.
type NodeConfig struct {
	StateDir, HandlersDir string
	Environment           string
	RPCAddr, RPCAuth      string // RPCAddr "": the handler's default
	// CodeDir holds environments/ENV/modules, the masters' modulepath.
	CodeDir       string
	RepoDir       string // the git repository of the module motd
	PuppetCommand []string
	SummaryFile   string
	PuppetState   string
	PuppetTimeout time.Duration
	LogURL        string // "": no logging service
	Extra         string // appended as is
	// FactsCommand: empty, the handler's default (`puppet facts show`).
	FactsCommand []string
}

// YAML is the configuration file's text.
func (c NodeConfig) YAML() string {
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir: %s\n", c.StateDir)
	fmt.Fprintf(&b, "handlers_dir: %s\n", c.HandlersDir)
	fmt.Fprintf(&b, "environment: %s\n", c.Environment)
	if c.RPCAddr != "" {
		fmt.Fprintf(&b, "serf:\n  rpc_addr: %s\n", c.RPCAddr)
		if c.RPCAuth != "" {
			fmt.Fprintf(&b, "  rpc_auth: %q\n", c.RPCAuth)
		}
	}
	fmt.Fprintf(&b, "master:\n  modulepath: %s\n  modules:\n    motd: %s\n  trigger_timeout: 10s\n",
		filepath.Join(c.CodeDir, "environments", "{environment}", "modules"), c.RepoDir)
	b.WriteString("puppet:\n  command:\n")
	for _, a := range c.PuppetCommand {
		fmt.Fprintf(&b, "    - %q\n", a)
	}
	fmt.Fprintf(&b, "  summary_file: %s\n  state_dir: %s\n  timeout: %s\n", c.SummaryFile, c.PuppetState, c.PuppetTimeout)
	if len(c.FactsCommand) > 0 {
		b.WriteString("  facts_command:\n")
		for _, a := range c.FactsCommand {
			fmt.Fprintf(&b, "    - %q\n", a)
		}
	}
	if c.LogURL != "" {
		fmt.Fprintf(&b, "logging:\n  url: %s\n", c.LogURL)
	}
	b.WriteString(c.Extra)
	return b.String()
}

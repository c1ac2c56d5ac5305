// Package handler is what runs on every node: serf invokes `serfdeploy handle`
// for each event and query, and the handler answers fast, handing long work
// (git, puppet) to a detached worker process.
package handler

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// Roles a node can have.
const (
	RoleMaster = "master"
	RoleAgent  = "agent"
)

// Config is a node's configuration file (YAML). Every field has a default
// suited to Debian's puppet packages; see README.md.
type Config struct {
	// Role is master or agent. Empty: derived from the serf tag MasterTag.
	Role string `yaml:"role"`
	// MasterTag is key=regexp; a node whose tag matches is a master when Role
	// is empty. Default role=puppetmaster.
	MasterTag string `yaml:"master_tag"`
	// StateDir holds run records, worker logs, releases and the log spool.
	StateDir string `yaml:"state_dir"`
	// HandlersDir is no longer read: `handle` is registered for
	// serfdeploy's own event and queries only, and an operator's
	// executables (user-NAME, query-NAME, member-join...) run from a second
	// -event-handler, scripts/handler-router.sh. Kept so that existing
	// node.yaml files still load.
	HandlersDir string `yaml:"handlers_dir"`
	// Environment is the Puppet environment used when a request names none.
	Environment string `yaml:"environment"`

	Serf    SerfConfig    `yaml:"serf"`
	Master  MasterConfig  `yaml:"master"`
	Puppet  PuppetConfig  `yaml:"puppet"`
	Logging LoggingConfig `yaml:"logging"`
}

// SerfConfig says how a master's worker reaches its own agent to fire
// puppetrun.
type SerfConfig struct {
	RPCAddr string `yaml:"rpc_addr"`
	RPCAuth string `yaml:"rpc_auth"`
}

// MasterConfig is the code-sync side.
type MasterConfig struct {
	// Modulepath is where modules are installed; {environment} is replaced.
	Modulepath string `yaml:"modulepath"`
	// Modules maps a module name to the git URL it is fetched from.
	Modules map[string]string `yaml:"modules"`
	// GitURL is used for modules not in Modules; {module} is replaced.
	GitURL string `yaml:"git_url"`
	// TriggerTimeout bounds the puppetrun query a master fires.
	TriggerTimeout time.Duration `yaml:"trigger_timeout"`
	// GitTimeout bounds each git command of a code sync: a hung git
	// server fails the sync instead of holding the deploy.
	GitTimeout time.Duration `yaml:"git_timeout"`
	// KeepReleases is how many installed versions of a module are kept.
	KeepReleases int `yaml:"keep_releases"`
}

// PuppetConfig is the run side.
type PuppetConfig struct {
	// Command is the puppet run, as argv; {environment} is replaced.
	Command []string `yaml:"command"`
	// JSONLog appends `--logdest console --logdest FILE.jsonl` so that failed
	// resources and errors can be read back exactly.
	JSONLog *bool `yaml:"json_log"`
	// SummaryFile is puppet's last_run_summary.yaml.
	SummaryFile string `yaml:"summary_file"`
	// StateDir is puppet's statedir, where agent_disabled.lock and
	// agent_catalog_run.lock live.
	StateDir string `yaml:"state_dir"`
	// Timeout kills a run that hangs.
	Timeout time.Duration `yaml:"timeout"`
	// PIDFile is the agent daemon's pidfile (`puppet config print pidfile
	// --section agent`): the daemon runs while it names a live Puppet
	// process. serfdeploy's status answer says so (puppetstate.go).
	PIDFile string `yaml:"pidfile"`
	// What --fact and --class read (facts.go, select.go); empty or zero:
	// the defaults there. FactsCommand prints the node's facts as one
	// JSON object (argv); FactsTimeout bounds it; FactsMaxAge is how long
	// its output is used before it is read again. ClassesFile is Puppet's
	// classfile, the classes of the last catalog applied.
	FactsCommand []string      `yaml:"facts_command"`
	FactsTimeout time.Duration `yaml:"facts_timeout"`
	FactsMaxAge  time.Duration `yaml:"facts_max_age"`
	ClassesFile  string        `yaml:"classes_file"`
}

// LoggingConfig is the central logging service (Grafana Loki). Empty URL:
// no records are sent.
type LoggingConfig struct {
	URL         string        `yaml:"url"`
	TenantID    string        `yaml:"tenant_id"`
	Username    string        `yaml:"username"`
	Password    string        `yaml:"password"`
	BearerToken string        `yaml:"bearer_token"`
	CAFile      string        `yaml:"ca_file"`
	Job         string        `yaml:"job"`
	Timeout     time.Duration `yaml:"timeout"`
}

// DefaultPuppetCommand is the real thing users run.
var defaultPuppetCommand = []string{"puppet", "agent", "--test", "--detailed-exitcodes", "--environment", "{environment}"}

// LoadConfig reads and checks a config file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the node config: %w", err)
	}
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	// An empty file decodes as io.EOF and means "all defaults".
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("node config %s: %w", path, err)
	}
	c.setDefaults()
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("node config %s: %w", path, err)
	}
	return &c, nil
}

func (c *Config) setDefaults() {
	if c.MasterTag == "" {
		c.MasterTag = protocol.DefaultMasterTag
	}
	if c.StateDir == "" {
		c.StateDir = "/var/lib/serfdeploy"
	}
	if c.HandlersDir == "" {
		c.HandlersDir = "/etc/serf/handlers"
	}
	if c.Environment == "" {
		c.Environment = "production"
	}
	if c.Serf.RPCAddr == "" {
		c.Serf.RPCAddr = serfrpc.DefaultAddr
	}
	if c.Master.Modulepath == "" {
		c.Master.Modulepath = "/etc/puppet/code/environments/{environment}/modules"
	}
	if c.Master.TriggerTimeout == 0 {
		c.Master.TriggerTimeout = 15 * time.Second
	}
	if c.Master.GitTimeout == 0 {
		c.Master.GitTimeout = 2 * time.Minute
	}
	if c.Master.KeepReleases == 0 {
		c.Master.KeepReleases = 5
	}
	if len(c.Puppet.Command) == 0 {
		c.Puppet.Command = append([]string(nil), defaultPuppetCommand...)
	}
	if c.Puppet.JSONLog == nil {
		yes := true
		c.Puppet.JSONLog = &yes
	}
	if c.Puppet.SummaryFile == "" {
		c.Puppet.SummaryFile = "/var/cache/puppet/public/last_run_summary.yaml"
	}
	if c.Puppet.StateDir == "" {
		c.Puppet.StateDir = "/var/cache/puppet/state"
	}
	if c.Puppet.Timeout == 0 {
		c.Puppet.Timeout = time.Hour
	}
	if c.Puppet.PIDFile == "" {
		c.Puppet.PIDFile = "/run/puppet/agent.pid"
	}
	// The facts and classes settings (facts.go) are filled in too, so that
	// node.yaml can show what a node uses.
	if len(c.Puppet.FactsCommand) == 0 {
		c.Puppet.FactsCommand = append([]string(nil), defaultFactsCommand...)
	}
	c.Puppet.FactsTimeout, c.Puppet.FactsMaxAge = c.Puppet.factsTimeout(), c.Puppet.factsMaxAge()
	c.Puppet.ClassesFile = c.Puppet.classesFile()
	if c.Logging.Job == "" {
		c.Logging.Job = "serfdeploy"
	}
	if c.Logging.Timeout == 0 {
		c.Logging.Timeout = 10 * time.Second
	}
}

func (c *Config) check() error {
	switch c.Role {
	case "", RoleMaster, RoleAgent:
	default:
		return fmt.Errorf("role %q: use master, agent, or leave it out to derive it from master_tag", c.Role)
	}
	if _, _, err := serfrpc.ParseTag(c.MasterTag); err != nil {
		return fmt.Errorf("master_tag: %w", err)
	}
	if err := protocol.ValidEnvironment(c.Environment); err != nil {
		return err
	}
	for m := range c.Master.Modules {
		if err := protocol.ValidModule(m); err != nil {
			return fmt.Errorf("master.modules: %w", err)
		}
	}
	if c.Master.GitTimeout < 0 || c.Master.TriggerTimeout < 0 {
		return fmt.Errorf("master.git_timeout and master.trigger_timeout must be positive")
	}
	return nil
}

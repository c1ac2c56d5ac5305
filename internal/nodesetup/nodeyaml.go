package nodesetup

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/serfdeploy/serfdeploy/handler"
)

const nodeYAMLHeader = "serfdeploy node config (README.md, \"Node configuration\").\n" +
	"`serfdeploy install` sets the settings it is given and keeps the rest."

// planNodeYAML works out node.yaml from the options and returns the role
// it ends with.
func planNodeYAML(r *Result, o *Options, p Paths) (string, *pending, error) {
	path := p.NodeYAML
	b, existed, err := readIfExists(path)
	if err != nil {
		return "", nil, err
	}
	d, err := parseYAML(path, b)
	if err != nil {
		return "", nil, err
	}
	if !existed {
		d.doc.Content[0].HeadComment = nodeYAMLHeader
	}

	// setStr sets one string setting when given (a first install: when def
	// is given) and reports it.
	setStr := func(value, def string, secret bool, keys ...string) (string, error) {
		var old string
		if err := d.get(&old, keys...); err != nil {
			return "", err
		}
		if value == "" && old == "" {
			value = def
		}
		if value == "" || value == old {
			return old, nil
		}
		r.setting(path, strings.Join(keys, "."), old, value, secret)
		return value, d.set(value, keys...)
	}

	role, err := setStr(o.Role, handler.RoleAgent, false, "role")
	if err != nil {
		return "", nil, err
	}
	if _, err := setStr(o.RPCAuth, "", true, "serf", "rpc_auth"); err != nil {
		return "", nil, err
	}
	if _, err := setStr(o.LogURL, "", false, "logging", "url"); err != nil {
		return "", nil, err
	}
	if _, err := setStr(o.GitURL, "", false, "master", "git_url"); err != nil {
		return "", nil, err
	}
	names := make([]string, 0, len(o.Modules))
	for m := range o.Modules {
		names = append(names, m)
	}
	sort.Strings(names)
	for _, m := range names {
		if _, err := setStr(o.Modules[m], "", false, "master", "modules", m); err != nil {
			return "", nil, err
		}
	}
	if o.PuppetCommand != nil {
		var old []string
		if err := d.get(&old, "puppet", "command"); err != nil {
			return "", nil, err
		}
		if !slices.Equal(old, o.PuppetCommand) {
			r.setting(path, "puppet.command", strings.Join(old, " "), strings.Join(o.PuppetCommand, " "), false)
			if err := d.set(o.PuppetCommand, "puppet", "command"); err != nil {
				return "", nil, err
			}
		}
	}
	if _, err := setStr(o.PuppetSummaryFile, "", false, "puppet", "summary_file"); err != nil {
		return "", nil, err
	}
	if _, err := setStr(o.PuppetStateDir, "", false, "puppet", "state_dir"); err != nil {
		return "", nil, err
	}
	if o.Root != "/" {
		// Under a test root the handler's state and handlers stay there
		// too, as every other path does.
		if _, err := setStr("", p.StateDir, false, "state_dir"); err != nil {
			return "", nil, err
		}
		if _, err := setStr("", p.HandlersDir, false, "handlers_dir"); err != nil {
			return "", nil, err
		}
	}

	data, err := d.encode()
	if err != nil {
		return "", nil, err
	}
	cfg, err := checkNodeYAML(path, data)
	if err != nil {
		return "", nil, err
	}
	mode := os.FileMode(modePublic)
	if cfg.Serf.RPCAuth != "" || cfg.Logging.Password != "" || cfg.Logging.BearerToken != "" {
		mode = modeSecret
	}
	if cfg.Role == handler.RoleMaster && cfg.Master.GitURL == "" && len(cfg.Master.Modules) == 0 {
		r.warn("%s: a master with neither master.git_url nor master.modules cannot sync any code; give --git-url URL or --module NAME=URL", path)
	}
	if cfg.Logging.URL == "" {
		r.warn("%s: no logging.url: Puppet runs send no records to Loki; give --log-url URL", path)
	}
	return role, &pending{path, data, mode}, nil
}

// checkNodeYAML loads the new file the way the handler does
// (handler.LoadConfig, unknown settings refused) before it replaces the
// old one. The check copy is created 0600: it may hold a key.
func checkNodeYAML(path string, data []byte) (*handler.Config, error) {
	tmp, err := os.CreateTemp("", "serfdeploy-node.yaml.check-*")
	if err != nil {
		return nil, fmt.Errorf("checking %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	if err := tmp.Close(); werr != nil || err != nil {
		return nil, fmt.Errorf("checking %s: %v %v", path, werr, err)
	}
	cfg, err := handler.LoadConfig(tmp.Name())
	if err != nil {
		return nil, fmt.Errorf("the node config install would write is refused by the handler, nothing was changed: %w", err)
	}
	return cfg, nil
}

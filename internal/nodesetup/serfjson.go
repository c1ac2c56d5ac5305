package nodesetup

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/serfdeploy/serfdeploy/handler"
)

// serfJSON is serf's agent config file as a map of its settings, so that
// settings install does not manage (bind, log_level...) are kept as they
// are. Every value is encoded by encoding/json: no input can end a string
// early and add a setting of its own.
type serfJSON map[string]json.RawMessage

func loadSerfJSON(path string) (serfJSON, error) {
	b, existed, err := readIfExists(path)
	if err != nil || !existed {
		return serfJSON{}, err
	}
	m := serfJSON{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON (%w); nothing was changed: fix it or move it aside and run install again", path, err)
	}
	return m, nil
}

func (m serfJSON) get(key string, v any) error {
	raw, ok := m[key]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("serf.json %s: %w", key, err)
	}
	return nil
}

func (m serfJSON) set(key string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Strings, string slices and maps of strings always encode.
		panic("nodesetup: encoding " + key + ": " + err.Error())
	}
	m[key] = b
}

func (m serfJSON) str(key string) (string, error) {
	var s string
	err := m.get(key, &s)
	return s, err
}

func (m serfJSON) encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string]json.RawMessage(m)); err != nil {
		return nil, fmt.Errorf("encoding serf.json: %w", err)
	}
	return buf.Bytes(), nil
}

// planSerfJSON works out serf.json on the options: node name, tags (the
// role tag from role), retry_join, rpc_auth, keyring_file and serfdeploy's
// event handler.
func planSerfJSON(r *Result, o *Options, p Paths, role string) (*pending, error) {
	m, err := loadSerfJSON(p.SerfJSON)
	if err != nil {
		return nil, err
	}
	path := p.SerfJSON

	name, err := m.str("node_name")
	if err != nil {
		return nil, err
	}
	newName := name
	switch {
	case o.NodeName != "":
		newName = o.NodeName
	case name == "":
		if newName, err = hostName(); err != nil {
			return nil, err
		}
	}
	r.setting(path, "node_name", name, newName, false)
	m.set("node_name", newName)

	tags := map[string]string{}
	if err := m.get("tags", &tags); err != nil {
		return nil, err
	}
	if tags == nil {
		tags = map[string]string{}
	}
	want := map[string]string{}
	for k, v := range tags {
		want[k] = v
	}
	if _, ok := want["fqdn"]; !ok {
		want["fqdn"] = newName
	}
	for k, v := range o.Tags {
		want[k] = v
	}
	for _, k := range o.RemoveTags {
		delete(want, k)
	}
	if role == handler.RoleMaster {
		want[roleTagKey] = roleTagMaster
	} else if want[roleTagKey] == roleTagMaster {
		delete(want, roleTagKey)
	}
	if err := tagsFit(want); err != nil {
		return nil, &InputError{err}
	}
	for _, k := range unionKeys(tags, want) {
		r.setting(path, "tag "+k, tags[k], want[k], false)
	}
	m.set("tags", want)

	if o.Join != nil {
		var old []string
		if err := m.get("retry_join", &old); err != nil {
			return nil, err
		}
		var start []string
		if err := m.get("start_join", &start); err != nil {
			return nil, err
		}
		if len(start) > 0 {
			// Older installs used start_join, which stops the agent
			// when the address is down at boot; retry_join keeps trying.
			r.setting(path, "start_join", strings.Join(start, ","), "", false)
			delete(m, "start_join")
		}
		r.setting(path, "retry_join", strings.Join(old, ","), strings.Join(o.Join, ","), false)
		m.set("retry_join", o.Join)
	}

	if o.RPCAuth != "" {
		old, err := m.str("rpc_auth")
		if err != nil {
			return nil, err
		}
		r.setting(path, "rpc_auth", old, o.RPCAuth, true)
		m.set("rpc_auth", o.RPCAuth)
	}
	if o.EncryptKey != "" {
		old, err := m.str("keyring_file")
		if err != nil {
			return nil, err
		}
		if _, ok := m["encrypt_key"]; ok {
			// serf refuses a keyring file and an encrypt_key together.
			r.setting(path, "encrypt_key", "x", "", true)
			delete(m, "encrypt_key")
		}
		r.setting(path, "keyring_file", old, p.Keyring, false)
		m.set("keyring_file", p.Keyring)
	}

	// serf.json's event_handlers are serfdeploy's; serf appends the
	// event_handlers of every other *.json in the config dir, so an
	// operator's own handlers go in a file of their own.
	var oldHandlers []string
	if err := m.get("event_handlers", &oldHandlers); err != nil {
		return nil, err
	}
	handlers := []string{HandlerRegistration(o.Binary, p.NodeYAML)}
	r.setting(path, "event_handlers", strings.Join(oldHandlers, " "), handlers[0], false)
	m.set("event_handlers", handlers)

	data, err := m.encode()
	if err != nil {
		return nil, err
	}
	mode := os.FileMode(modePublic)
	if rpc, _ := m.str("rpc_auth"); rpc != "" || m["encrypt_key"] != nil {
		mode = modeSecret
	}
	return &pending{path, data, mode}, nil
}

func unionKeys(a, b map[string]string) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

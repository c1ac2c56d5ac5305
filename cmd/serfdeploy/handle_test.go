package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

// TestHandleIgnoresOtherEvents: an agent registered without serfdeploy's
// filter forks `handle` for every member event, and an operator's user
// events and queries are not serfdeploy's. Those exit 0 at once: silent,
// without reading the config (here a missing one) or touching the state
// directory (here one whose log would be created).
func TestHandleIgnoresOtherEvents(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	cfg := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(cfg, []byte("state_dir: "+state+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, env := range [][]string{
		{"SERF_EVENT=member-join"}, {"SERF_EVENT=member-leave"}, {"SERF_EVENT=member-failed"},
		{"SERF_EVENT=member-update"}, {"SERF_EVENT=member-reap"},
		{"SERF_EVENT=user", "SERF_USER_EVENT=someone-elses"},
		{"SERF_EVENT=query", "SERF_QUERY_NAME=uptime"},
		{"SERF_EVENT=user", "SERF_USER_EVENT=puppetrun"}, // a query's name as a user event
	} {
		env = append(env, "SERF_SELF_NAME=n1")
		for _, config := range []string{cfg + ".missing", cfg} {
			r := deployrig.Run(t, bin, env, "handle", "--config", config)
			if r.Code != 0 || r.Stdout != "" || r.Stderr != "" {
				t.Errorf("%v with config %s: %s", env, config, r)
			}
		}
		if _, err := os.Stat(state); !os.IsNotExist(err) {
			t.Fatalf("%v: the handler touched the state directory", env)
		}
	}
	// serfdeploy's own still need their config.
	r := deployrig.Run(t, bin, []string{"SERF_EVENT=user", "SERF_USER_EVENT=deploy", "SERF_SELF_NAME=n1"}, "handle", "--config", cfg+".missing")
	if r.Code == 0 {
		t.Fatalf("the deploy event with a missing config: %s", r)
	}
}

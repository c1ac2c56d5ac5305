package handler

import (
	"strings"
	"testing"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// Serves and protocol.HandlerFilter agree: what serf lets through is what
// the handler answers, and nothing else is.
func TestServesMatchesTheFilter(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, f := range strings.Split(protocol.HandlerFilter(), ",") {
		kind, name, _ := strings.Cut(f, ":")
		var getenv func(string) string
		switch kind {
		case "user":
			getenv = env("SERF_EVENT", "user", "SERF_USER_EVENT", name)
		case "query":
			getenv = env("SERF_EVENT", "query", "SERF_QUERY_NAME", name)
		default:
			t.Fatalf("filter entry %q", f)
		}
		if !Serves(getenv) {
			t.Errorf("%s: in the filter, not served", f)
		}
	}
	for _, e := range [][]string{
		{"SERF_EVENT", ""}, {"SERF_EVENT", "member-join"}, {"SERF_EVENT", "member-reap"},
		{"SERF_EVENT", "user", "SERF_USER_EVENT", "puppetrun"},
		{"SERF_EVENT", "query", "SERF_QUERY_NAME", "deploy"},
		{"SERF_EVENT", "query", "SERF_QUERY_NAME", "puppet"},
		{"SERF_EVENT", "query", "SERF_QUERY_NAME", "puppetrun,query:x"},
		{"SERF_EVENT", "query", "SERF_QUERY_NAME", "puppetrun,query:puppet-status"},
		{"SERF_EVENT", "user", "SERF_USER_EVENT", ""},
	} {
		if Serves(env(e...)) {
			t.Errorf("%v: served", e)
		}
	}
}

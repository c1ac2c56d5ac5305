package orchestrate

// go test -run '^$' -fuzz '^FuzzWatchAnswers$' -fuzztime 60s ./orchestrate/
// (docs/fuzzing.md)

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// FuzzWatchAnswers: a puppet-status or puppetrun answer as the CLI's watch
// takes it, from a target, a master or a stranger. It never panics; an
// answer that does not decode, is not versioned or is not from the node
// that sent it, or is about another request, changes no target and adds
// none; only a master's answer can end the watch, and with a usage or
// infrastructure code; every target stays in a known state.
func FuzzWatchAnswers(f *testing.F) {
	for _, s := range []struct {
		from, payload string
		run           bool
	}{
		{"agent-01", `{"v":1,"node":"agent-01","role":"agent","id":"d1","phase":"finished","exit":0,"changed":1,"total":10,"dur":12.5,"req":{"module":"motd","ref":"v1","env":"production"},"applied":"motd=0123abcdef"}`, false},
		{"agent-01", `{"v":1,"node":"agent-01","role":"agent","id":"d1","phase":"failed","reason":"resources_failed","msg":"Exec[boom]: returned 1","exit":2,"failed":1}`, false},
		{"agent-01", `{"v":1,"node":"agent-01","id":"d1","phase":"finished","req":{"module":"ntp","ref":"v9"}}`, false},
		{"agent-01", `{"v":1,"node":"agent-02","id":"d1","phase":"finished"}`, false},
		{"agent-01", `{"v":0,"node":"agent-01","id":"d1","phase":"finished"}`, false},
		{"agent-09", `{"v":1,"node":"agent-09","id":"d1","phase":"running"}`, false},
		{"agent-09", `{"v":1,"node":"agent-09","id":"d1","phase":"skipped"}`, false},
		{"master-01", `{"v":1,"node":"master-01","role":"master","id":"d1","phase":"unknown","sync":"triggered","commit":"0123abcdef","reached":2}`, false},
		{"master-01", `{"v":1,"node":"master-01","role":"master","id":"d1","phase":"unknown","sync":"failed","sync_reason":"unknown_ref","sync_msg":"fatal: couldn't find remote ref v1"}`, false},
		{"master-01", `{"v":1,"node":"master-01","id":"d1","sync":"synced","req":{"module":"ntp","ref":"v1"}}`, false},
		{"agent-01", `{"v":1,"node":"agent-01","result":"started"}`, true},
		{"agent-01", `{"v":1,"node":"agent-01","result":"already","msg":"finished","req":{"module":"ntp","ref":"v1"}}`, true},
		{"agent-01", `{"v":1,"node":"agent-01","result":"busy","running":"d0","msg":"run d0 was in progress"}`, true},
		{"agent-01", `{"v":1,"node":"agent-01","result":"rejected","msg":"bad request"}`, true},
		{"agent-09", `{"v":1,"node":"agent-09","result":"started"}`, true},
		{"agent-01", `not json`, false}, {"agent-01", `{"v":"1"}`, false}, {"agent-01", ``, true}, {"", `{"v":1,"node":""}`, false},
		{"agent-01", `{"v":1,"node":"agent-01","phase":"finished","last":` + strings.Repeat(`{"last":`, 300) + `{}` + strings.Repeat("}", 301), false},
		{"agent-01", strings.Repeat("[", 20000), false},
		{"agent-01", "{\"v\":1,\"node\":\"agent-01\",\"id\":\"d1\",\"phase\":\"failed\",\"msg\":\"\x1b[31m\xff\x00\"}", false},
	} {
		f.Add(s.from, []byte(s.payload), s.run)
	}
	known := map[string]bool{}
	for _, s := range []string{StateWaiting, StatePending, StateRunning, StateFinished, StateFailed, StateBusy,
		StateDisabled, StateSkipped, StateLost, StateTimeout, StateMissed, StateInterrupted, StateStale} {
		known[s] = true
	}
	f.Fuzz(func(t *testing.T, from string, payload []byte, run bool) {
		opts := &Options{ID: "d1", Module: "motd", Ref: "v1", Environment: "production"}
		opts.setDefaults()
		s := newDeployState(opts, "deploy",
			[]serfrpc.Member{{Name: "agent-01"}, {Name: "agent-02"}}, []serfrpc.Member{{Name: "master-01"}})
		s.apply(fired{At: time.Now()})
		s.masters["master-01"].Commit = "0123abcdef"
		before := map[string]NodeResult{}
		for k, v := range s.targets {
			before[k] = *v
		}

		var ignored bool // the answer must change nothing
		if run {
			s.apply(runAnswer{At: time.Now(), From: from, Payload: payload})
			var a protocol.RunAnswer
			ignored = json.Unmarshal(payload, &a) != nil ||
				(a.Result == protocol.RunAlready && a.Request.Conflicts(opts.request())) || s.targets[from] == nil
		} else {
			s.apply(statusAnswer{At: time.Now(), From: from, Payload: payload})
			var st protocol.Status
			bad := json.Unmarshal(payload, &st) != nil || st.V == 0 || st.Node != from
			ignored = bad || st.Request.Conflicts(opts.request())
			if err := s.end; err != nil {
				var e *Error
				if !errors.As(err, &e) || (e.Code != ExitUsage && e.Code != ExitInfra) || s.masters[from] == nil || bad {
					t.Fatalf("answer %q from %q: %v", payload, from, err)
				}
			}
			if bad && s.garbled[from] != 1 {
				t.Fatalf("unreadable answer %q from %q not counted", payload, from)
			}
		}
		after := map[string]NodeResult{}
		for k, v := range s.targets {
			after[k] = *v
			if !known[v.State] {
				t.Fatalf("answer %q from %q left %s in state %q", payload, from, k, v.State)
			}
		}
		if ignored && !reflect.DeepEqual(before, after) {
			t.Fatalf("answer %q from %q changed the targets: %+v -> %+v", payload, from, before, after)
		}
		if len(after) != len(before) && (run || len(after) != len(before)+1 || !after[from].JoinedLate) {
			t.Fatalf("answer %q from %q changed the target list: %+v", payload, from, after)
		}
	})
}

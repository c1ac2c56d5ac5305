package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/internal/fleet"
	"github.com/serfdeploy/serfdeploy/internal/lokitest"
	"github.com/serfdeploy/serfdeploy/orchestrate"
)

func TestDeployWithLoki(t *testing.T) {
	loki := lokitest.Start(t)
	f := qaFleet(t, fleet.Options{LogURL: loki.URL})
	f.Repo.CommitModule("v2-broken", f.Files, failOn("agent-02"))
	logEnv := []string{"SERFDEPLOY_LOG_URL=" + loki.URL}

	r := f.CLI(append(logEnv, "BUILD_URL=https://ci.example/job/release/9/"),
		deployArgs("--ref", "v2-broken", "--tag", "segment=qa", "--id", "loki-1")...)
	if r.Code != 1 {
		t.Fatalf("want exit 1: %s", r)
	}
	for _, want := range []string{"final status from the logging service", "Exec[break-on-agent-02]", "'/bin/false' returned 1 instead of one of [0]"} {
		if !strings.Contains(r.Stdout, want) {
			t.Fatalf("summary lacks %q:\n%s", want, r)
		}
	}

	// The same result later, from Loki alone: no serf agent at this address.
	rep := fleet.Run(t, bin, append(logEnv, "SERF_RPC_ADDR="+deadAddr(t)), "report", "loki-1", "--format", "json")
	if rep.Code != 1 {
		t.Fatalf("report: %s", rep)
	}
	var res orchestrate.Result
	if err := json.Unmarshal([]byte(rep.Stdout), &res); err != nil {
		t.Fatal(err)
	}
	got := states(res)
	if len(got) != 2 || got["agent-01"] != "finished" || got["agent-02"] != "failed" || res.Module != "motd" || res.Ref != "v2-broken" {
		t.Fatalf("report %+v", res)
	}
	for _, n := range res.Nodes {
		if n.Node == "agent-02" && (len(n.FailedResources) != 1 || n.FailedResources[0].Resource != "Exec[break-on-agent-02]" || n.Source != "log") {
			t.Fatalf("agent-02 from the log: %+v", n)
		}
	}
	if res.Build == nil || res.Build.URL != "https://ci.example/job/release/9/" {
		t.Fatalf("the record does not lead back to the build: %+v", res.Build)
	}
	txt := fleet.Run(t, bin, logEnv, "report", "loki-1")
	if txt.Code != 1 || !strings.Contains(txt.Stdout, "Exec[break-on-agent-02]") {
		t.Fatalf("text report: %s", txt)
	}
	if unknown := fleet.Run(t, bin, logEnv, "report", "no-such-deploy"); unknown.Code != 3 || !strings.Contains(unknown.Stderr, "no record of deploy no-such-deploy") {
		t.Fatalf("unknown id: %s", unknown)
	}

	// Loki down while the runs finish: the records wait in the nodes'
	// spools and all arrive once it is back.
	loki.Stop()
	r = f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", "loki-2")...)
	if r.Code != 0 || !strings.Contains(r.Stderr, "no logging service configured") {
		t.Fatalf("deploy while Loki is down, without --log-url: %s", r)
	}
	down := f.CLI(logEnv, deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", "loki-3")...)
	if down.Code != 5 || !strings.Contains(down.Stderr, "nothing was deployed") {
		t.Fatalf("deploy with an unreachable Loki: %s", down)
	}
	loki.Restart(t)
	deadline := time.Now().Add(90 * time.Second)
	for {
		rep = fleet.Run(t, bin, logEnv, "report", "loki-2", "--format", "json")
		res = orchestrate.Result{}
		json.Unmarshal([]byte(rep.Stdout), &res)
		finished := 0
		for _, n := range res.Nodes {
			if n.State == "finished" {
				finished++
			}
		}
		if rep.Code == 0 && finished == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("spooled records did not arrive after Loki came back: %s", rep)
		}
		time.Sleep(2 * time.Second)
	}
}

func TestLokiRefusesCredentials(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "ci" || p != "right" {
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"status":"success","data":{"resultType":"streams","result":[]}}`))
	}))
	defer srv.Close()
	r := fleet.Run(t, bin, []string{"SERFDEPLOY_LOG_URL=" + srv.URL, "SERFDEPLOY_LOG_USER=ci", "SERFDEPLOY_LOG_PASSWORD=wrong", "SERF_RPC_ADDR=" + deadAddr(t)},
		"deploy", "--module", "motd", "--ref", "v1")
	if r.Code != 5 {
		t.Fatalf("wrong credentials: %s", r)
	}
	oneLine(t, r, "refused the credentials")
	r = fleet.Run(t, bin, []string{"SERFDEPLOY_LOG_URL=" + srv.URL, "SERFDEPLOY_LOG_USER=ci", "SERFDEPLOY_LOG_PASSWORD=right"}, "report", "x1")
	if r.Code != 3 {
		t.Fatalf("right credentials, unknown id: %s", r)
	}
}

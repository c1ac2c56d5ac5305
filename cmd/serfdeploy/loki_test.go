package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/logclient"
	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
	"github.com/serfdeploy/serfdeploy/testkit/loki"
)

func TestDeployWithLoki(t *testing.T) {
	lk := loki.Start(t)
	f := qaRig(t, deployrig.Options{LogURL: lk.URL})
	f.Repo.CommitModule("v2-broken", f.Files, failOn("agent-02"))
	logEnv := []string{"SERFDEPLOY_LOG_URL=" + lk.URL}

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
	rep := deployrig.Run(t, bin, append(logEnv, "SERF_RPC_ADDR="+deadAddr(t)), "report", "loki-1", "--format", "json")
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
	txt := deployrig.Run(t, bin, logEnv, "report", "loki-1")
	if txt.Code != 1 || !strings.Contains(txt.Stdout, "Exec[break-on-agent-02]") {
		t.Fatalf("text report: %s", txt)
	}
	if unknown := deployrig.Run(t, bin, logEnv, "report", "no-such-deploy"); unknown.Code != 3 || !strings.Contains(unknown.Stderr, "no record of deploy no-such-deploy") {
		t.Fatalf("unknown id: %s", unknown)
	}

	// Loki down while the runs finish: the records wait in the nodes'
	// spools and all arrive once it is back.
	lk.Stop()
	r = f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", "loki-2")...)
	if r.Code != 0 || !strings.Contains(r.Stderr, "no logging service configured") {
		t.Fatalf("deploy while Loki is down, without --log-url: %s", r)
	}
	down := f.CLI(logEnv, deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", "loki-3")...)
	if down.Code != 5 || !strings.Contains(down.Stderr, "nothing was deployed") {
		t.Fatalf("deploy with an unreachable Loki: %s", down)
	}
	lk.Restart(t)
	deadline := time.Now().Add(90 * time.Second)
	for {
		rep = deployrig.Run(t, bin, logEnv, "report", "loki-2", "--format", "json")
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
	r := deployrig.Run(t, bin, []string{"SERFDEPLOY_LOG_URL=" + srv.URL, "SERFDEPLOY_LOG_USER=ci", "SERFDEPLOY_LOG_PASSWORD=wrong", "SERF_RPC_ADDR=" + deadAddr(t)},
		"deploy", "--module", "motd", "--ref", "v1")
	if r.Code != 5 {
		t.Fatalf("wrong credentials: %s", r)
	}
	oneLine(t, r, "refused the credentials")
	r = deployrig.Run(t, bin, []string{"SERFDEPLOY_LOG_URL=" + srv.URL, "SERFDEPLOY_LOG_USER=ci", "SERFDEPLOY_LOG_PASSWORD=right"}, "report", "x1")
	if r.Code != 3 {
		t.Fatalf("right credentials, unknown id: %s", r)
	}
}

// TestNoSecretInAnyOutput: the serf RPC key and the logging service's
// credentials, set on the nodes and the CLI, appear in no output, report,
// log record, node state or log file; only in the config files that hold
// them.
func TestNoSecretInAnyOutput(t *testing.T) {
	lk := loki.Start(t)
	const rpcKey, nodePassword, cliPassword = "rpc-s3cr3t-1f9a", "node-s3cr3t-7c2b", "cli-s3cr3t-4d8e"
	f := qaRig(t, deployrig.Options{LogURL: lk.URL, RPCAuth: rpcKey,
		ExtraConfig: "  username: serfdeploy\n  password: " + nodePassword + "\n"})
	f.Repo.CommitModule("v2-broken", f.Files, failOn("agent-02"))
	dir := t.TempDir()
	env := []string{"SERFDEPLOY_LOG_URL=" + lk.URL, "SERFDEPLOY_LOG_USER=ci", "SERFDEPLOY_LOG_PASSWORD=" + cliPassword}
	var outputs []string
	for _, args := range [][]string{
		deployArgs("--ref", "v2-broken", "--tag", "segment=qa", "--id", "secret-1",
			"--junit", filepath.Join(dir, "j.xml"), "--result-file", filepath.Join(dir, "r.json"), "--summary-file", filepath.Join(dir, "s.md")),
		{"status", "--id", "secret-1", "--format", "json"},
		{"members", "--format", "json"},
	} {
		r := f.CLI(env, args...)
		outputs = append(outputs, r.Stdout, r.Stderr)
	}
	r := deployrig.Run(t, bin, append(env, "SERF_RPC_ADDR="+f.Cluster.Node("master-01").RPCAddr, "SERF_RPC_AUTH=wrong-"+rpcKey), "members")
	outputs = append(outputs, r.Stdout, r.Stderr)
	logs, err := logclient.New(logclient.Config{URL: lk.URL})
	if err != nil {
		t.Fatal(err)
	}
	records, err := logs.Records(context.Background(), "secret-1", time.Now().Add(-time.Hour), time.Now().Add(time.Minute))
	if err != nil || len(records) == 0 {
		t.Fatalf("records %v %v", records, err)
	}
	b, _ := json.Marshal(records)
	outputs = append(outputs, string(b))
	for _, secret := range []string{rpcKey, nodePassword, cliPassword} {
		for i, out := range outputs {
			if strings.Contains(out, secret) {
				t.Fatalf("output %d shows a secret:\n%s", i, out)
			}
		}
	}
	// Every file the run left, but the configs that hold the secrets.
	for _, root := range []string{dir, f.Dir, f.Cluster.Dir()} {
		filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(path, ".yaml") || d.Name() == "serf.json" {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			for _, secret := range []string{rpcKey, nodePassword, cliPassword} {
				if bytes.Contains(b, []byte(secret)) {
					t.Errorf("%s holds a secret", path)
				}
			}
			return nil
		})
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

// TestReportWritesItsFilesOnEveryExit: `report` of an id the logging
// service has no record of (exit 3) still writes the JUnit and result
// files a job archives, and --format json prints a document; it wrote
// neither file.
func TestReportWritesItsFilesOnEveryExit(t *testing.T) {
	empty := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"streams","result":[]}}`)
	}))
	defer empty.Close()
	dir := t.TempDir()
	junit, result := filepath.Join(dir, "junit.xml"), filepath.Join(dir, "result.json")
	r := deployrig.Run(t, bin, []string{"SERFDEPLOY_LOG_URL=" + empty.URL}, "report", "no-such-deploy",
		"--junit", junit, "--result-file", result, "--format", "json")
	if r.Code != orchestrate.ExitNoTargets {
		t.Fatalf("want exit 3: %s", r)
	}
	var doc, file orchestrate.Result
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil || doc.ExitCode != 3 {
		t.Fatalf("stdout is no result document (%v): %s", err, r)
	}
	b, err := os.ReadFile(result)
	if err == nil {
		err = json.Unmarshal(b, &file)
	}
	if err != nil || file.ExitCode != 3 || file.ID != "no-such-deploy" {
		t.Fatalf("result file: %v %s", err, b)
	}
	parseJUnit(t, junit)
}

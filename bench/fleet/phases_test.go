package fleetbench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

// startPhases is where the time from fire to the last run's start went in
// a serfdeploy deploy, read from the nodes' own records: each a time after
// the fire.
type startPhases struct {
	MasterHandler time.Duration   // the master's handler took the deploy event (gossip + handler start)
	MasterWorker  time.Duration   // its sync worker started
	Synced        time.Duration   // the module installed (git + install)
	FirstAgent    time.Duration   // the first agent's handler took the puppetrun request
	LastAgent     time.Duration   // the last agent's handler took it
	LastWorker    time.Duration   // the last agent's run worker started
	LastRun       time.Duration   // the last stand-in run started (ground truth)
	Took          []time.Duration // when each agent's handler took the request, sorted
}

// readPhases reads the master's sync record and the agents' run records of
// id from the fleet's state directories.
func readPhases(dir, id string, agents []string, fired time.Time, truth []deployrig.TruthLine) (startPhases, error) {
	var p startPhases
	var rec struct{ Created, Started, Synced time.Time }
	read := func(node, kind string) error {
		rec.Created, rec.Started, rec.Synced = time.Time{}, time.Time{}, time.Time{}
		b, err := os.ReadFile(filepath.Join(dir, "state", node, "runs", id, kind+".json"))
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &rec)
	}
	if err := read("master", "sync"); err != nil {
		return p, err
	}
	p.MasterHandler, p.MasterWorker, p.Synced = rec.Created.Sub(fired), rec.Started.Sub(fired), rec.Synced.Sub(fired)
	p.FirstAgent = time.Duration(1 << 62)
	for _, a := range agents {
		if err := read(a, "run"); err != nil {
			return p, err
		}
		p.FirstAgent = min(p.FirstAgent, rec.Created.Sub(fired))
		p.LastAgent = max(p.LastAgent, rec.Created.Sub(fired))
		p.LastWorker = max(p.LastWorker, rec.Started.Sub(fired))
		p.Took = append(p.Took, rec.Created.Sub(fired))
	}
	slices.Sort(p.Took)
	for _, l := range truth {
		p.LastRun = max(p.LastRun, l.Start.Sub(fired))
	}
	return p, nil
}

// phasesTable renders the start breakdown of every serfdeploy row.
func phasesTable(rows []row) string {
	var b strings.Builder
	b.WriteString("| N | master's handler | its worker | synced | first agent took the run | last agent took it | last worker started | last run started |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if r.Phases == nil {
			continue
		}
		p := r.Phases
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s | %s |\n", r.N, sec(p.MasterHandler), sec(p.MasterWorker), sec(p.Synced),
			sec(p.FirstAgent), sec(p.LastAgent), sec(p.LastWorker), sec(p.LastRun))
	}
	return b.String()
}

func sec(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

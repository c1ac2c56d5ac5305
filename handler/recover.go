package handler

import (
	"path/filepath"

	"github.com/serfdeploy/serfdeploy/logclient"
	"github.com/serfdeploy/serfdeploy/protocol"
)

// recoverRun decides a run whose worker died (SIGKILL, the OOM killer)
// after Puppet had started, from what Puppet left: its summary, JSON log
// and output, as the worker would have. Puppet's exit code is lost with
// the worker; the summary tells success from failed resources. It reports
// false when there is no summary of this run to go by (then the run is
// worker_died). The finished record goes to the spool for the logging
// service, as the worker's would have. The caller holds the state lock.
func (n *Node) recoverRun(r *Record) bool {
	if r.Kind != KindRun {
		return false
	}
	summary, err := readSummary(n.cfg.Puppet.SummaryFile, r.Started, r.SummaryBefore)
	if err != nil {
		return false
	}
	dir := n.st.runDir(r.ID)
	output := readOutput(filepath.Join(dir, "puppet.log"))
	entries := readLogEntries(filepath.Join(dir, "puppet.jsonl"))
	exit := 0 // as --detailed-exitcodes would say, from the summary
	if summary.Resources.Changed > 0 {
		exit = 2
	}
	if summary.Resources.Failed > 0 || summary.Resources.FailedToRestart > 0 {
		exit = 6
	}
	o := classify(exit, summary, entries, output, n.cfg.Puppet.StateDir)
	r.Phase, r.Reason = o.phase, o.reason
	r.Message = protocol.Truncate("its worker died; decided from Puppet's summary: "+o.message, 2000)
	r.Changed = summary.Resources.Changed
	r.Failed = summary.Resources.Failed + summary.Resources.FailedToRestart
	r.Total = summary.Resources.Total
	r.ConfigVersion = summary.configVersion()
	r.FailedResources = failedResources(entries)
	if client, err := n.logClient(); err == nil && client != nil {
		if err := (logclient.Spool{Dir: n.st.spoolDir()}).Add(n.logRecord(r, protocol.LogFinished)); err == nil {
			n.flushSpoolLater()
		}
	}
	n.log.Printf("run %s: worker died; Puppet's summary says %s %s", r.ID, r.Phase, r.Reason)
	return true
}

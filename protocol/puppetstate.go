package protocol

// PuppetState is Puppet's own state on a node, whoever ran Puppet there
// (serfdeploy, the agent daemon, cron, a person): its last run as its
// last_run_summary.yaml says, and whether a run holds its catalog lock
// now. A node puts it in its answer to puppet-status with an empty id, for
// `serfdeploy summary`, `count` and `status`. The keys are short: the whole
// answer must stay under serf's 1,024 bytes. A zero count or time is left
// out and reads as 0.
type PuppetState struct {
	// At is the summary's time.last_run: when that run ended, unix
	// seconds on the node's clock.
	At int64 `json:"at,omitempty"`
	// Version is version.config, the code the run applied (empty when it
	// got no catalog). Left out when By is serfdeploy: the last run's
	// applied field has it.
	Version string `json:"ver,omitempty"`
	// Resources, from the summary's resources: total, changed, failed
	// (with failed_to_restart) and out of sync.
	Total     int `json:"total,omitempty"`
	Changed   int `json:"changed,omitempty"`
	Failed    int `json:"failed,omitempty"`
	OutOfSync int `json:"oos,omitempty"`
	// ConfigRetrieval is time.config_retrieval and Duration time.total,
	// in seconds (for an agent, time.total is the whole run).
	ConfigRetrieval float64 `json:"cfg,omitempty"`
	Duration        float64 `json:"dur,omitempty"`
	// Fail: the run failed: resources failed or failed to restart, an
	// event failed, or no catalog was applied (no resources at all:
	// Puppet always has its schedules and filebucket).
	Fail bool `json:"fail,omitempty"`
	// By is who made that run: BySerfdeploy when its time falls within
	// one of serfdeploy's run records on the node, else ByOther (the
	// daemon, cron or a person: the summary does not say which).
	By string `json:"by,omitempty"`
	// Running: Puppet's catalog-run lock is held by a live Puppet process
	// now, whoever started it.
	Running bool `json:"run,omitempty"`
	// Daemon is DaemonRunning or DaemonStopped, from the agent daemon's
	// pidfile (node.yaml puppet.pidfile); empty when unknown.
	Daemon string `json:"daemon,omitempty"`
	// Error says why there are no figures: no summary (Puppet never ran
	// here, or puppet.summary_file is wrong) or one that cannot be read.
	Error string `json:"err,omitempty"`
}

// Who made a node's last Puppet run (PuppetState.By).
const (
	BySerfdeploy = "serfdeploy"
	ByOther      = "other"
)

// The agent daemon's state (PuppetState.Daemon).
const (
	DaemonRunning = "running"
	DaemonStopped = "stopped"
)

package protocol

import "time"

// FailedResource is a resource Puppet could not apply, with its error.
type FailedResource struct {
	Resource string `json:"resource"`
	Message  string `json:"message"`
}

// Outcome is how a run ended: what a node's finished record says and what
// the CLI's result reports for the node, field for field.
type Outcome struct {
	Reason          string           `json:"reason,omitempty"`
	Message         string           `json:"message,omitempty"`
	ExitCode        *int             `json:"exit_code,omitempty"`
	Changed         int              `json:"changed"`
	Failed          int              `json:"failed"`
	Total           int              `json:"total"`
	Pending         int              `json:"pending,omitempty"` // noop run: resources that would change
	DurationSec     float64          `json:"duration_sec"`
	ConfigVersion   string           `json:"config_version,omitempty"`
	FailedResources []FailedResource `json:"failed_resources,omitempty"`
}

// What a run record says happened (RunRecord.Event).
const (
	LogStarted  = "started"  // Puppet started on the node
	LogFinished = "finished" // the run ended: Phase and Outcome say how
)

// RunRecord is one line in the logging service: a run started or finished.
// Nodes write it, the CLI reads it: it is a wire format like the answers.
type RunRecord struct {
	Event       string `json:"event"` // LogStarted or LogFinished
	DeployID    string `json:"deploy_id"`
	Node        string `json:"node"`
	Environment string `json:"environment"`
	Module      string `json:"module,omitempty"`
	Ref         string `json:"ref,omitempty"`
	Phase       string `json:"phase"`
	Outcome
	BuildTag string    `json:"build_tag,omitempty"`
	BuildURL string    `json:"build_url,omitempty"`
	JobName  string    `json:"job_name,omitempty"`
	Time     time.Time `json:"time"`
}

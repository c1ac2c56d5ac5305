package main

import (
	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// Versions of the --format json documents other than a deploy's result
// (orchestrate.ResultSchema). Each changes when a field changes meaning or
// goes; docs/json-schema.json describes every field, and schema_test.go
// checks real output against it.
const (
	membersSchema = 1
	statusSchema  = 1
	lockSchema    = 1
	planSchema    = 1
)

// The documents wrap orchestrate's types to put schema_version beside
// their fields (an embedded pointer's fields are encoded inline).
type (
	membersJSONDoc struct {
		SchemaVersion int              `json:"schema_version"`
		Members       []serfrpc.Member `json:"members"`
	}
	statusJSONDoc struct {
		SchemaVersion int `json:"schema_version"`
		*orchestrate.StatusReport
	}
	lockJSONDoc struct {
		SchemaVersion int `json:"schema_version"`
		*orchestrate.LockReport
	}
	planJSONDoc struct {
		SchemaVersion int `json:"schema_version"`
		*orchestrate.Plan
	}
)

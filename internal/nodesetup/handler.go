package nodesetup

import (
	"strings"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// HandlerFilter is serf's event filter for serfdeploy's handler: only the
// event and queries serfdeploy answers start it, so member churn and other
// user events never fork a handler.
//
// TODO: use the shared protocol.HandlerFilter() once it lands (the churn
// work adds it to protocol/handlers.go); this copy is built from the same
// constants.
func HandlerFilter() string {
	return strings.Join([]string{
		"user:" + protocol.EventDeploy,
		"query:" + protocol.QueryPuppetRun,
		"query:" + protocol.QueryPuppetStatus,
		"query:" + protocol.QueryPuppetDisable,
		"query:" + protocol.QueryPuppetEnable,
	}, ",")
}

// HandlerRegistration is the event_handlers entry of serf.json: the filter,
// then the command serf runs through /bin/sh -c.
func HandlerRegistration(binary, nodeYAML string) string {
	return HandlerFilter() + "=" + binary + " handle --config " + nodeYAML
}

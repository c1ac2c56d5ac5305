package nodesetup

import "github.com/serfdeploy/serfdeploy/protocol"

// HandlerRegistration is the event_handlers entry of serf.json: the filter,
// then the command serf runs through /bin/sh -c.
func HandlerRegistration(binary, nodeYAML string) string {
	return protocol.HandlerFilter() + "=" + binary + " handle --config " + nodeYAML
}

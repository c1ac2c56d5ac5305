package protocol

// HandlerFilter is serf's event filter for `serfdeploy handle`: the deploy
// event and the four queries serfdeploy answers, in the syntax of serf's
// -event-handler ("user:NAME,query:NAME,...=COMMAND", the same parser from
// serf 0.8 to 0.11). Registered as
//
//	serf agent -event-handler "FILTER=serfdeploy handle --config FILE"
//
// serf forks the handler for these alone. Unfiltered, serf forks it for
// every member event too, one at a time on each node: while a fleet of N
// forms, every node runs it about N times for joins, updates and reaps, and
// the puppetrun and puppet-status queries of a deploy wait in the same
// queue behind them (issue 22).
func HandlerFilter() string {
	return "user:" + EventDeploy +
		",query:" + QueryPuppetRun +
		",query:" + QueryPuppetStatus +
		",query:" + QueryPuppetDisable +
		",query:" + QueryPuppetEnable
}

// The serf tag that names the Puppet masters by default: the CLI's
// --master-tag, a node's master_tag, and what `serfdeploy install --role
// master` sets.
const (
	MasterTagKey   = "role"
	MasterTagValue = "puppetmaster"
	// DefaultMasterTag is the filter form, key=regexp.
	DefaultMasterTag = MasterTagKey + "=" + MasterTagValue
)

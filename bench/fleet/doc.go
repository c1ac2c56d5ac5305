// Package fleetbench measures a deploy to N real serf agents on loopback
// whose puppet command is a stand-in (testkit/deployrig/standin.go), side by
// side with the article's design: one `serf query puppetrun`, then a shell
// loop of `serf query puppet-status` until every target reports a final
// phase. Nothing heavy runs without -bench or -startcost; see
// docs/performance.md:
//
//	go test ./bench/fleet -run '^$' -bench Fleet -benchtime 1x -timeout 60m -args -n 10,50,100,150
//	go test ./bench/fleet -run '^$' -bench Churn -benchtime 1x -timeout 120m -args -n 50
//	go test ./bench/fleet -run HandlerStartCost -count=1 -v -args -startcost 50
package fleetbench

package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/serfdeploy/serfdeploy/internal/render"
	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

func statusCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show each matching node's Puppet state now, or its phase of one deploy",
		Description: "Without --id: each node is idle or running (with the deploy id), and its last run's result\n" +
			"and age. With --id: each node's phase of that deploy, and the exit code deploy would give.\n" +
			"Exits 4 when a node did not answer.",
		Flags: concat(rpcFlags(), outputFlags(), filterFlags(), []cli.Flag{
			&cli.StringFlag{Name: "id", Usage: "a deploy id: show each node's phase of it"},
			queryTimeoutFlag(),
		}),
		Action: action(func(c *cli.Context) error {
			check := func(f serfrpc.Filter) error {
				if err := checkDurations(c, "query-timeout"); err != nil {
					return err
				}
				return orchestrate.CheckStatus(f, c.String("id"))
			}
			return env.withAgent(c, check, func(client *serfrpc.Client, f serfrpc.Filter) error {
				rep, err := orchestrate.Status(c.Context, client, f, c.String("id"), c.Duration("query-timeout"))
				if err != nil {
					return err
				}
				if jsonOutput(c) {
					err = render.JSON(env.io.Out, statusJSONDoc{statusSchema, rep})
				} else {
					err = printStatus(env, rep)
				}
				if err != nil {
					return err
				}
				return exitError{rep.ExitCode}
			})
		}),
	}
}

// queryTimeoutFlag is status's, enable's and disable's: each asks the nodes
// once and waits as long for their answers.
func queryTimeoutFlag() cli.Flag {
	return &cli.DurationFlag{Name: "query-timeout", Value: 5 * time.Second, Usage: "how long to wait for slow nodes"}
}

func printStatus(env *cliEnv, rep *orchestrate.StatusReport) error {
	now := time.Now()
	tw := tabwriter.NewWriter(env.io.Out, 0, 0, 2, ' ', 0)
	if rep.ID != "" {
		fmt.Fprintln(tw, "NODE\tROLE\tPHASE\tEXIT\tCHANGED\tFAILED\tTOTAL\tDETAIL")
	} else {
		fmt.Fprintln(tw, "NODE\tROLE\tSTATE\tLAST DEPLOY\tLAST RESULT\tEXIT\tAGE\tCODE\tDETAIL")
	}
	for _, n := range rep.Nodes {
		st := n.Status
		if st == nil {
			fmt.Fprintf(tw, "%s\t-\tno answer\t\t\t\t\t\t%s\n", n.Node, n.Problem)
			continue
		}
		if rep.ID != "" {
			phase, detail := st.Phase, st.Message
			if st.Sync != "" {
				phase, detail = "sync "+st.Sync, st.SyncMsg
			}
			if st.Reason != "" {
				detail = st.Reason + ": " + detail
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", n.Node, st.Role, phase, protocol.ExitText(st.Exit), st.Changed, st.Failed, st.Total, detail)
			continue
		}
		state := "idle"
		if st.Running != "" {
			state = "running " + st.Running
		}
		if st.Disabled != "" {
			state += ", disabled"
		}
		last, result, exit, age, code, detail := "-", "-", "-", "-", "-", ""
		if l := st.Last; l != nil {
			last, result, exit, detail = l.ID, l.Phase, protocol.ExitText(l.Exit), l.Message
			if l.Applied != "" {
				code = l.Applied
			}
			if l.Reason != "" {
				detail = l.Reason + ": " + detail
			}
			if l.Finished > 0 {
				age = now.Sub(time.Unix(l.Finished, 0)).Round(time.Second).String()
			}
		}
		if st.Disabled != "" {
			detail = strings.TrimPrefix(detail+"; "+st.Disabled, "; ")
		}
		if st.Reason == protocol.ReasonStateError {
			// The node cannot write its state directory (a full or
			// read-only disk): it can take no run.
			detail = strings.TrimPrefix(detail+"; "+st.Reason+": "+st.Message, "; ")
		}
		if st.LogSetAside > 0 {
			detail = strings.TrimPrefix(detail+fmt.Sprintf("; %d log record(s) refused by the logging service, kept in spool/rejected", st.LogSetAside), "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Node, st.Role, state, last, result, exit, age, code, detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if rep.Note != "" {
		fmt.Fprintf(env.io.ErrOut, "serfdeploy: %s (exit %d)\n", rep.Note, rep.ExitCode)
	}
	return nil
}

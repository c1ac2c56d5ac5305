package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// workSync is a master's worker for one deploy: fetch the module at the ref,
// install it atomically, then fire puppetrun at the deploy's targets.
func (n *Node) workSync(ctx context.Context, id string) error {
	rec, err := n.st.startWorker(id, KindSync, "")
	if err != nil {
		return err
	}
	fail := func(reason string, err error) error {
		rec.Phase, rec.Reason, rec.Message = protocol.PhaseFailed, reason, err.Error()
		rec.Finished = time.Now()
		n.log.Printf("deploy %s: %s: %v", id, reason, err)
		return n.st.saveLocked(rec)
	}

	commit, err := n.sync(ctx, rec)
	switch {
	case errors.Is(err, errUnknownRef):
		return fail(protocol.ReasonUnknownRef, err)
	case errors.Is(err, errUnknownModule):
		return fail(protocol.ReasonUnknownModule, err)
	case errors.As(err, new(*refusedError)):
		return fail(protocol.ReasonUnsafeModule, err)
	case err != nil:
		return fail(protocol.ReasonSyncFailed, err)
	}
	rec.Commit = commit
	rec.Phase, rec.Synced = protocol.PhaseSynced, time.Now()
	rec.Message = fmt.Sprintf("installed %s at %s (%s)", rec.Module, rec.Ref, shortCommit(commit))
	if err := n.st.save(rec); err != nil {
		return err
	}
	n.log.Printf("deploy %s: %s", id, rec.Message)
	if rec.Deploy.SyncOnly {
		rec.Finished = time.Now()
		rec.Message += "; the CLI starts the runs in batches"
		return n.st.saveLocked(rec)
	}

	summary, reached, listed, err := n.trigger(ctx, rec.Deploy)
	if errors.Is(err, serfrpc.ErrAuth) {
		// The key is the node's, not the CLI's: say which setting to fix.
		err = fmt.Errorf("this master's serf agent refused the handler's RPC key: set serf.rpc_auth in %s to the agent's RPC auth key", n.cfgPath)
	}
	if err != nil {
		return fail(protocol.ReasonTriggerFailed, err)
	}
	rec.Phase = protocol.PhaseTriggered
	rec.Message, rec.Reached, rec.Listed = summary, reached, listed
	rec.Finished = time.Now()
	n.log.Printf("deploy %s: puppetrun: %s", id, summary)
	return n.st.saveLocked(rec)
}

// sync fetches and installs the module; it returns the installed commit.
func (n *Node) sync(ctx context.Context, rec *Record) (string, error) {
	url, err := n.gitSource(rec.Module)
	if err != nil {
		return "", err
	}
	modulepath := strings.ReplaceAll(n.cfg.Master.Modulepath, "{environment}", rec.Environment)
	// An environment that does not exist is the operator's mistake to hear
	// about, not a silent run of another environment.
	envDir := filepath.Dir(modulepath)
	if info, err := os.Stat(envDir); err != nil || !info.IsDir() {
		return "", fmt.Errorf("environment %s does not exist on master %s (no directory %s)", rec.Environment, n.name, envDir)
	}
	if err := os.MkdirAll(modulepath, 0o755); err != nil {
		return "", err
	}
	releases := filepath.Join(n.st.dir, "releases", rec.Environment, rec.Module)
	if err := os.MkdirAll(releases, 0o755); err != nil {
		return "", err
	}
	// One install of a module into an environment at a time: a second
	// deploy of it waits here, and says so.
	unlock, waited, err := lockFile(ctx, releases+".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if waited {
		n.log.Printf("deploy %s: waited for another deploy of %s in %s to finish installing", rec.ID, rec.Module, rec.Environment)
	}
	release := filepath.Join(releases, rec.ID)
	os.RemoveAll(release)
	commit, err := fetchModule(ctx, url, rec.Ref, release, n.cfg.Master.GitTimeout)
	if err != nil {
		os.RemoveAll(release)
		return "", err
	}
	// The commit travels with the module, for the config_version script.
	if err := writeCommit(release, commit); err != nil {
		os.RemoveAll(release)
		return "", err
	}
	if err := n.ensureConfigVersion(envDir, modulepath); err != nil {
		n.log.Printf("deploy %s: runs will not report the code they applied: %v", rec.ID, err)
	}
	old := filepath.Join(releases, "before-"+rec.ID)
	if err := installModule(modulepath, rec.Module, release, old); err != nil {
		return "", fmt.Errorf("installing into %s: %w", modulepath, err)
	}
	pruneReleases(releases, n.cfg.Master.KeepReleases, release)
	return commit, nil
}

// trigger fires puppetrun at the deploy's targets and says what they
// answered, and how many did. It waits only until every alive target has
// answered.
func (n *Node) trigger(ctx context.Context, d *protocol.Deploy) (summary string, reached, listed int, err error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Master.TriggerTimeout+10*time.Second)
	defer cancel()
	c, err := serfrpc.Connect(ctx, serfrpc.Config{Addr: n.cfg.Serf.RPCAddr, AuthKey: n.cfg.Serf.RPCAuth})
	if err != nil {
		return "", 0, 0, err
	}
	defer c.Close()
	filter := serfrpc.Filter{Tags: d.Tags, Nodes: d.Nodes}
	members, err := c.Members(ctx, filter, serfrpc.StatusAlive)
	if err != nil {
		return "", 0, 0, err
	}
	var expect []string
	for _, m := range members {
		expect = append(expect, m.Name)
	}
	if len(expect) == 0 {
		return "no alive node matched " + filter.String(), 0, 0, nil
	}
	payload, err := json.Marshal(protocol.RunRequest{
		ID: d.ID, Environment: d.Environment, Module: d.Module, Ref: d.Ref,
		SkipMasters: d.SkipMasters, Build: d.Build, PuppetFlags: d.PuppetFlags, WaitSec: d.WaitSec,
	})
	if err != nil {
		return "", 0, 0, err
	}
	res, err := c.Query(ctx, serfrpc.Query{
		Name: protocol.QueryPuppetRun, Payload: payload, Filter: filter,
		Timeout: n.cfg.Master.TriggerTimeout, Expect: expect, Resend: 500 * time.Millisecond,
	})
	if err != nil {
		return "", 0, 0, err
	}
	counts := map[string]int{}
	for _, r := range res.Responses {
		var a protocol.RunAnswer
		if err := protocol.DecodeAnswerFrom(r.Payload, r.From, &a); err != nil {
			counts["garbled"]++
			continue
		}
		counts[a.Result]++
	}
	var parts []string
	for _, k := range []string{protocol.RunStarted, protocol.RunQueued, protocol.RunAlready, protocol.RunBusy, protocol.RunDisabled, protocol.RunSkipped, protocol.RunRejected, "garbled"} {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	// A node that acknowledged the request has it: its handler queue is
	// behind (a fleet forming or restarting) and its answer comes after the
	// query ended, but the run starts. Counted as reached, so that the CLI
	// waits for it instead of taking "no answer" for "not reached".
	late := 0
	for _, name := range res.Acks {
		if slices.Contains(expect, name) && !res.Responded(name) {
			late++
		}
	}
	if late > 0 {
		parts = append(parts, fmt.Sprintf("%d acknowledged, answer late", late))
	}
	if missing := len(expect) - len(res.Responses) - late; missing > 0 {
		parts = append(parts, fmt.Sprintf("%d no answer", missing))
	}
	return strings.Join(parts, ", "), len(res.Responses) + late - counts[protocol.RunSkipped], len(expect) - counts[protocol.RunSkipped], nil
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

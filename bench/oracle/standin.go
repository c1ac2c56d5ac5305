package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

// The oracle's stand-in for `puppet agent --test --detailed-exitcodes`.
// testkit/deployrig's stand-in bakes one run per node into the script; here
// each (deploy id, node) has its own plan, written before the deploy:
// how long the run takes, whether it changes something, and its mode: ok,
// fail (an Error line, exit 1 or 6), hostile (a 5 kB line with terminal
// escapes and invalid UTF-8, exit 1 or 2) or hang (a run far longer than
// the CLI's --timeout). At its start the run reads the commit of the
// module the master has installed (what a compile would use) and writes a
// start line; at its end it writes a last_run_summary.yaml whose
// config_version names that commit, as serfdeploy's config_version script
// makes Puppet do, and appends testkit/deployrig's ground-truth line.
//
//	starts.txt  <node> <start unix-nanos> <pid> <id> <commit>
//	truth.txt   <node> <start unix-nanos> <end unix-nanos> <exit> <id>  (deployrig.ReadTruth)
//
// This is the run's body: deployrig.StandInScript reads the arguments into n, f
// and id before it and writes the summary (adding a "time: file" entry,
// which serfdeploy does not read) and the ground-truth line after it.
const standInBody = `# bench/oracle's stand-in: one plan per deploy id and node.
t=1 c=0 mode=ok x=0
[ -f "@PLANS@/$id/$n" ] && . "@PLANS@/$id/$n"
s=$(date +%s%N)
v=$(cat '@MODULES@/motd/.serfdeploy-commit' 2>/dev/null) || v=
[ -n "$v" ] || v=none
echo "$n $s $$ $id $v" >>'@STARTS@'
echo "Notice: stand-in run of $id on $n for ${t}s, motd=$v"
sleep "$t"
r=0
[ "$c" = 1 ] && r=2
fl=0
case $mode in
fail)
	echo "Error: stand-in failure of $id on $n"
	r=$x
	[ "$x" = 1 ] || fl=1
	;;
hostile)
	p=Error
	[ "$x" = 1 ] || p=Notice
	printf '%s: \033[31mhostile\033[0m\033[2J\033]0;title\007 \377\376\300 %s on %s %s\n' "$p" "$id" "$n" "$(printf '%5000s' '' | tr ' ' y)"
	r=$x
	;;
esac
cv="\"motd=$v \""
`

func (c *cluster) writeStandIn() error {
	dir := filepath.Join(c.dir, "standin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	c.standin = filepath.Join(dir, "standin.sh")
	c.plans = filepath.Join(c.dir, "plans")
	c.starts = filepath.Join(dir, "starts.txt")
	c.truth = filepath.Join(dir, "truth.txt")
	for _, p := range []string{c.plans, c.starts, c.truth, c.modules} {
		if strings.ContainsAny(p, "'\"$`\\ ") {
			return fmt.Errorf("stand-in: path %q holds a character the script cannot quote", p)
		}
	}
	body := strings.NewReplacer("@PLANS@", c.plans, "@MODULES@", c.modules, "@STARTS@", c.starts).Replace(standInBody)
	script, err := deployrig.StandInScript(body, c.truth)
	if err != nil {
		return err
	}
	return os.WriteFile(c.standin, []byte(script), 0o755)
}

// plan is what one node's stand-in does for one deploy id.
type plan struct {
	Dur     time.Duration
	Changed bool
	Mode    string // ok, fail, hostile, hang
	Exit    int    // fail: 1 or 6; hostile: 1 or 2
}

func (p plan) script() string {
	c := 0
	if p.Changed {
		c = 1
	}
	mode := p.Mode
	if mode == "hang" {
		mode = "ok"
	}
	return fmt.Sprintf("t=%.3f c=%d mode=%s x=%d\n", p.Dur.Seconds(), c, mode, p.Exit)
}

func (c *cluster) writePlan(id, node string, p plan) error {
	dir := filepath.Join(c.plans, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, node), []byte(p.script()), 0o644)
}

// run is one stand-in run as it really happened.
type run struct {
	Node, ID string
	Start    time.Time
	PID      int
	Commit   string // the module's commit installed when the run started
	Ended    bool
	End      time.Time
	Exit     int
}

// readRuns joins the start lines with testkit/deployrig's ground-truth lines:
// id → node → runs, in start order.
func readRuns(starts, truth string) (map[string]map[string][]*run, error) {
	out := map[string]map[string][]*run{}
	byKey := map[string]*run{}
	f, err := os.Open(starts)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	if err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) != 5 {
				f.Close()
				return nil, fmt.Errorf("%s: malformed line %q", starts, sc.Text())
			}
			ns, err1 := strconv.ParseInt(fs[1], 10, 64)
			pid, err2 := strconv.Atoi(fs[2])
			if err1 != nil || err2 != nil {
				f.Close()
				return nil, fmt.Errorf("%s: malformed line %q", starts, sc.Text())
			}
			r := &run{Node: fs[0], Start: time.Unix(0, ns), PID: pid, ID: fs[3], Commit: fs[4]}
			if out[r.ID] == nil {
				out[r.ID] = map[string][]*run{}
			}
			out[r.ID][r.Node] = append(out[r.ID][r.Node], r)
			byKey[fmt.Sprintf("%s %d", r.Node, ns)] = r
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	lines, err := deployrig.ReadTruth(truth)
	if err != nil {
		return nil, err
	}
	for _, l := range lines {
		r := byKey[fmt.Sprintf("%s %d", l.Node, l.Start.UnixNano())]
		if r == nil {
			return nil, fmt.Errorf("a ground-truth line of %s on %s without its start line", l.ID, l.Node)
		}
		r.Ended, r.End, r.Exit = true, l.End, l.Exit
	}
	return out, nil
}

// waitStart waits until node's stand-in has started a run of id, or until
// stop closes; it returns that run.
func (c *cluster) waitStart(id, node string, stop <-chan struct{}) *run {
	for {
		runs, err := readRuns(c.starts, c.truth)
		if err == nil && len(runs[id][node]) > 0 {
			return runs[id][node][0]
		}
		select {
		case <-stop:
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

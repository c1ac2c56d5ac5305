package deployrig

import (
	"bufio"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// StandInRun is what the stand-in does on one node: sleep Duration, then
// write a last_run_summary.yaml with one changed resource when Changed, and
// exit 2 (changes) or 0 (none), as `puppet agent --test --detailed-exitcodes`
// does.
type StandInRun struct {
	Duration time.Duration
	Changed  bool
	// FailBytes, when set, makes the run fail (exit 1) with one Error line
	// of that many bytes: an answer that must be cut to serf's limit.
	FailBytes int
}

// StandInRuns gives each node a run length in [min, max) and a changed flag,
// derived from seed and the node's name alone: the same node gets the same
// run in every design and every benchmark run with that seed.
func StandInRuns(seed int64, nodes []string, min, max time.Duration) map[string]StandInRun {
	out := make(map[string]StandInRun, len(nodes))
	for _, n := range nodes {
		h := fnv.New64a()
		fmt.Fprintf(h, "%d/%s", seed, n)
		v := h.Sum64()
		d := min
		if max > min {
			d += time.Duration((v >> 1) % uint64(max-min))
		}
		out[n] = StandInRun{Duration: d.Round(time.Millisecond), Changed: v&1 == 1}
	}
	return out
}

// StandIn is a stand-in for the puppet command: a small POSIX sh script
// (dash starts in about a millisecond, which matters with 150 nodes on two
// cores) that forks only `date` twice and `sleep` once. Each run appends one
// line to Truth: "<node> <start unix-nanos> <end unix-nanos> <exit> <id>",
// id being the deploy id read from the --logdest FILE the handler adds
// (runs/<id>/puppet.jsonl), "-" without it.
type StandIn struct {
	Path  string // the script
	Truth string // the ground-truth file
	Runs  map[string]StandInRun
}

// WriteStandIn writes the stand-in script for runs into dir.
func WriteStandIn(dir string, runs map[string]StandInRun) (*StandIn, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &StandIn{Path: filepath.Join(dir, "puppet-standin.sh"), Truth: filepath.Join(dir, "truth.txt"), Runs: runs}
	names := make([]string, 0, len(runs))
	for n := range runs {
		names = append(names, n)
	}
	sort.Strings(names)
	var table strings.Builder
	for _, n := range names {
		r := runs[n]
		c := 0
		if r.Changed {
			c = 1
		}
		fmt.Fprintf(&table, "%s) t=%.3f c=%d m=%d;;\n", n, r.Duration.Seconds(), c, r.FailBytes)
	}
	script, err := StandInScript(`# testkit/deployrig's stand-in: one run per node, baked in below.
case $n in
`+table.String()+`*) echo "stand-in: no run for node $n" >&2; exit 1;;
esac
s=$(date +%s%N)
echo "Notice: stand-in run on $n for ${t}s"
sleep "$t"
r=0
[ "$c" = 1 ] && r=2
if [ "$m" -gt 0 ]; then
	printf 'Error: stand-in failure %s\n' "$(printf "%${m}s" "" | tr ' ' x)"
	r=1
fi
fl=0 cv=${s%?????????}
`, s.Truth)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.Path, []byte(script), 0o755); err != nil {
		return nil, err
	}
	return s, nil
}

// StandInScript makes a stand-in for the puppet command, a POSIX sh script
// run as `SCRIPT NODE SUMMARY_FILE [puppet arguments...]`, around body,
// the run itself. Before body, the script sets n (the node), f (the
// summary file) and id (the deploy id, read from the --logdest FILE the
// handler adds, runs/<id>/puppet.jsonl; "-" without it). Body sets s (the
// run's start, unix nanos), t (its length in seconds), c (1 when it
// changed a resource, else 0), fl (how many resources failed), cv (the
// config version, a YAML scalar), r (the exit code) and, optionally, cr
// (the config retrieval in seconds, default 0.05). After body, the script
// writes the last_run_summary.yaml these make, in Puppet 7's layout with
// time.last_run the run's end (r=1 if it cannot), appends the run's
// ground-truth line "<node> <start unix-nanos> <end unix-nanos> <exit>
// <id>" to truth (ReadTruth), and exits r. A run killed before its end
// writes no ground-truth line.
func StandInScript(body, truth string) (string, error) {
	if strings.Contains(truth, "'") {
		return "", fmt.Errorf("stand-in: path %q holds a quote", truth)
	}
	return `#!/bin/sh
# Stand-in for puppet agent --test --detailed-exitcodes (testkit/deployrig/standin.go).
# Usage: SCRIPT NODE SUMMARY_FILE [puppet arguments...]
n=$1 f=$2 id=- l=
shift 2
for a do l=$a; done
case $l in */puppet.jsonl) l=${l%/*}; id=${l##*/};; esac
` + body + `e=$(date +%s%N)
oos=$((c + fl))
{
echo '---'
echo 'version:'
echo "  config: $cv"
echo '  puppet: 7.23.0'
echo 'application:'
echo '  run_mode: agent'
echo '  initial_environment: production'
echo '  converged_environment: production'
echo 'resources:'
echo "  changed: $c"
echo '  corrective_change: 0'
echo "  failed: $fl"
echo '  failed_to_restart: 0'
echo "  out_of_sync: $oos"
echo '  restarted: 0'
echo '  scheduled: 0'
echo '  skipped: 0'
echo '  total: 8'
echo 'time:'
echo "  catalog_application: $t"
echo "  config_retrieval: ${cr:-0.05}"
echo "  file: $t"
echo "  total: $t"
echo "  transaction_evaluation: $t"
echo "  last_run: ${e%?????????}"
echo 'changes:'
echo "  total: $c"
echo 'events:'
echo "  failure: $fl"
echo "  success: $c"
echo "  total: $oos"
} >"$f" || r=1
echo "$n $s $e $r $id" >>'` + truth + `'
exit $r
`, nil
}

// Command is the node's puppet.command, with {name} for the node's name and
// {summary_file} for its puppet.summary_file, which the caller replaces.
// The handler appends --logdest FILE.jsonl, from which the id is read.
func (s *StandIn) Command() []string {
	return []string{"/bin/sh", s.Path, "{name}", "{summary_file}"}
}

// TruthLine is one stand-in run as it really happened.
type TruthLine struct {
	Node       string
	Start, End time.Time
	Exit       int
	ID         string
}

// ReadTruth reads the ground-truth file; a missing file is no runs.
func ReadTruth(path string) ([]TruthLine, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []TruthLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 5 {
			return nil, fmt.Errorf("%s: malformed line %q", path, sc.Text())
		}
		start, err1 := strconv.ParseInt(fs[1], 10, 64)
		end, err2 := strconv.ParseInt(fs[2], 10, 64)
		exit, err3 := strconv.Atoi(fs[3])
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("%s: malformed line %q", path, sc.Text())
		}
		out = append(out, TruthLine{Node: fs[0], Start: time.Unix(0, start), End: time.Unix(0, end), Exit: exit, ID: fs[4]})
	}
	return out, sc.Err()
}

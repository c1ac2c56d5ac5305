package fleetbench

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

var flagStartCost = flag.Int("startcost", 0, "TestHandlerStartCost: runs of each handler case (0: skip the test)")

// A handler case: one serf event or query as serf hands it to a handler.
type startCase struct {
	name  string
	env   []string
	input string // the payload; %d is replaced with the run's number
	run   bool   // a puppet run must start: time it too
}

var startCases = []startCase{
	{name: "member-join", env: []string{"SERF_EVENT=member-join", "SERF_TAG_ROLE=agent"}, input: "agent-002\t127.0.0.1\t\trole=agent\n"},
	{name: "deploy (master)", env: []string{"SERF_EVENT=user", "SERF_USER_EVENT=deploy", "SERF_TAG_ROLE=puppetmaster"},
		input: `{"id":"cost-d%d","module":"motd","ref":"v1"}`},
	{name: "puppetrun", env: []string{"SERF_EVENT=query", "SERF_QUERY_NAME=puppetrun", "SERF_TAG_ROLE=agent"}, input: `{"id":"cost-r%d"}`, run: true},
	{name: "puppet-status", env: []string{"SERF_EVENT=query", "SERF_QUERY_NAME=puppet-status", "SERF_TAG_ROLE=agent"}, input: `{"id":"cost-r0"}`},
}

// The article's handlers behind scripts/handler-router.sh: start the job
// detached (in its own session, as serfdeploy's worker is) and answer at
// once. RUN is the stand-in puppet command.
const (
	articleRun    = "#!/bin/sh\nsetsid /bin/sh -c \"$RUN\" </dev/null >/dev/null 2>&1 &\necho \"{\\\"node\\\":\\\"$SERF_SELF_NAME\\\",\\\"result\\\":\\\"started\\\"}\"\n"
	articleDeploy = "#!/bin/sh\nsetsid /bin/true </dev/null >/dev/null 2>&1 &\n"
	articleStatus = "#!/bin/sh\necho \"{\\\"node\\\":\\\"$SERF_SELF_NAME\\\",\\\"phase\\\":\\\"finished\\\"}\"\n"
)

// TestHandlerStartCost times one handler start per serf event, serfdeploy's
// against the article's shell router, as serf starts them (`/bin/sh -c
// COMMAND`, the payload on stdin): from the start to the handler's exit
// (serf answers a query, and takes the next event, only then), the
// handler's own CPU, and for puppetrun also to the start of the puppet
// command (a stand-in that opens a FIFO), through the detached worker.
// The designs take turns, run by run. Skipped without -startcost:
//
//	go test ./bench/fleet -run HandlerStartCost -count=1 -v -args -startcost 50
//	go test ./bench/fleet -run HandlerStartCost -count=1 -v -args -startcost 50 -bin OLD,NEW
func TestHandlerStartCost(t *testing.T) {
	if *flagStartCost <= 0 {
		t.Skip("-startcost N runs it")
	}
	// -bin may name several binaries, comma-separated (a build before a
	// change and one after): each is a design, in the same turns.
	bins := strings.Split(*flagBin, ",")
	if *flagBin == "" {
		bin, err := deployrig.BuildBinary(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		bins = []string{bin}
	}
	dir := t.TempDir()
	fifo := filepath.Join(dir, "puppet-started")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	standIn := ": > " + fifo
	state := filepath.Join(dir, "state")
	cfg := filepath.Join(dir, "node.yaml")
	writeFile(t, cfg, fmt.Sprintf("state_dir: %s\nmaster:\n  modulepath: %s\npuppet:\n  command: [/bin/sh, -c, %q]\n  summary_file: %s\n  state_dir: %s\n",
		state, filepath.Join(dir, "modules"), standIn, filepath.Join(dir, "summary.yaml"), dir))
	handlers := filepath.Join(dir, "handlers")
	writeFile(t, filepath.Join(handlers, "query-puppetrun"), articleRun)
	writeFile(t, filepath.Join(handlers, "user-deploy"), articleDeploy)
	writeFile(t, filepath.Join(handlers, "query-puppet-status"), articleStatus)
	router, err := filepath.Abs("../../scripts/handler-router.sh")
	if err != nil {
		t.Fatal(err)
	}
	type design struct{ name, command string }
	var designs []design
	for _, bin := range bins {
		name := "serfdeploy"
		if len(bins) > 1 {
			name += " " + filepath.Base(bin)
		}
		designs = append(designs, design{name, bin + " handle --config " + cfg})
	}
	designs = append(designs, design{"article (router)", "/bin/sh " + router})
	env := append(os.Environ(), "SERF_SELF_NAME=agent-001", "SERF_HANDLERS_DIR="+handlers, "RUN="+standIn)

	var b strings.Builder
	b.WriteString("\n| event | design | handler start → exit (median ms) | handler CPU (median ms) | start → puppet started (median ms) |\n|---|---|---|---|---|\n")
	for _, c := range startCases {
		type series struct{ exit, cpu, run []time.Duration }
		got := make([]series, len(designs))
		for i := 0; i < *flagStartCost+1; i++ { // run 0 warms up
			for d, design := range designs {
				exit, cpu, run := startOnce(t, design.command, append(env, c.env...), fmt.Sprintf(c.input, i*len(designs)+d), c.run, fifo, state)
				if i > 0 {
					got[d].exit, got[d].cpu, got[d].run = append(got[d].exit, exit), append(got[d].cpu, cpu), append(got[d].run, run)
				}
				// Let what the handler left running (workers) end before
				// the next start.
				time.Sleep(20 * time.Millisecond)
			}
		}
		for d, design := range designs {
			run := "–"
			if c.run {
				run = ms(median(got[d].run))
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", c.name, design.name, ms(median(got[d].exit)), ms(median(got[d].cpu)), run)
		}
	}
	t.Log(b.String())
	fmt.Print(b.String())
}

// startOnce runs one handler as serf does and times it; with run, it waits
// for the stand-in puppet to open the FIFO and for serfdeploy's run to end
// (the next puppetrun would find this one in progress).
func startOnce(t *testing.T, command string, env []string, input string, run bool, fifo, state string) (exit, cpu, started time.Duration) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(input)
	opened := make(chan time.Time, 1)
	if run {
		go func() {
			f, err := os.Open(fifo) // blocks until the stand-in opens it
			opened <- time.Now()
			if err == nil {
				f.Close()
			}
		}()
	}
	t0 := time.Now()
	out, err := cmd.Output()
	exit = time.Since(t0)
	if err != nil {
		t.Fatalf("%s: %v: %s", command, err, out)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if !run {
		return exit, cpu, 0
	}
	select {
	case at := <-opened:
		started = at.Sub(t0)
	case <-time.After(10 * time.Second):
		os.WriteFile(fifo, nil, 0) // unblocks the reader
		t.Fatalf("%s: the stand-in puppet did not start within 10s (answer %q)", command, out)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(state, "active")); os.IsNotExist(err) {
			break
		}
	}
	return exit, cpu, started
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }

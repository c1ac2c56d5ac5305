package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A node's Puppet facts, for --fact and --select. Puppet's agent keeps no
// copy of the facts it sends (its facts terminus asks Facter on every
// run), so a worker runs the facts command, by default `puppet facts show
// --render-as json`: Facter's facts plus Puppet's own and the custom and
// external facts pluginsync brought, what the server compiles with. That
// takes a second or more of CPU (1.3 s measured here), too long for a
// handler serf runs one after another, so its output is kept in the state
// directory and used for facts_max_age; the handler answers "reading
// facts" while a worker reads them, and the CLI asks again.

// Defaults of the puppet.facts_* and classes_file settings.
const (
	defaultFactsTimeout = time.Minute
	defaultFactsMaxAge  = 10 * time.Minute
	// factsErrorAge is how long a failed read is answered as such before
	// the next query tries again: long enough that a discovery does not
	// start one read after another, short enough that a fixed node is
	// seen soon.
	factsErrorAge = time.Minute
	// maxFactsBytes bounds what is read of the command's output: a large
	// node's facts are tens of kB.
	maxFactsBytes = 16 << 20
)

var defaultFactsCommand = []string{"puppet", "facts", "show", "--render-as", "json"}

func (c *PuppetConfig) factsCommand() []string {
	if len(c.FactsCommand) == 0 {
		return append([]string(nil), defaultFactsCommand...)
	}
	return c.FactsCommand
}

func (c *PuppetConfig) factsTimeout() time.Duration {
	if c.FactsTimeout <= 0 {
		return defaultFactsTimeout
	}
	return c.FactsTimeout
}

func (c *PuppetConfig) factsMaxAge() time.Duration {
	if c.FactsMaxAge <= 0 {
		return defaultFactsMaxAge
	}
	return c.FactsMaxAge
}

// classesFile is Puppet's classfile: `$statedir/classes.txt` unless
// configured otherwise (`puppet config print classfile`).
func (c *PuppetConfig) classesFile() string {
	if c.ClassesFile == "" {
		return filepath.Join(c.StateDir, "classes.txt")
	}
	return c.ClassesFile
}

// factsCache is state_dir/facts.json: the last read, facts or error.
type factsCache struct {
	Read  time.Time       `json:"read"`
	Took  float64         `json:"took_s"`
	Facts json.RawMessage `json:"facts,omitempty"`
	Error string          `json:"error,omitempty"`
}

func (n *Node) factsPath() string     { return filepath.Join(n.st.dir, "facts.json") }
func (n *Node) factsLockPath() string { return filepath.Join(n.st.dir, "facts.lock") }

// cachedFacts returns the facts read within facts_max_age, or the error
// of a read within factsErrorAge (fresh, with readErr); fresh false when
// there is neither and the facts must be read again.
func (n *Node) cachedFacts(now time.Time) (facts map[string]any, fresh bool, readErr error) {
	b, err := os.ReadFile(n.factsPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	var c factsCache
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil {
		// A broken cache is read again, not answered: the worker
		// replaces it.
		n.log.Printf("facts: cache %s unreadable, reading the facts again: %v", n.factsPath(), err)
		return nil, false, nil
	}
	age := now.Sub(c.Read)
	if c.Error != "" {
		if age < 0 || age >= min(factsErrorAge, n.cfg.Puppet.factsMaxAge()) {
			return nil, false, nil
		}
		return nil, true, fmt.Errorf("reading its facts failed %s ago: %s", age.Round(time.Second), c.Error)
	}
	if age < 0 || age >= n.cfg.Puppet.factsMaxAge() {
		return nil, false, nil
	}
	if facts, err = decodeFacts(c.Facts); err != nil {
		return nil, false, nil
	}
	return facts, true, nil
}

// decodeFacts reads one JSON object, numbers kept as written.
func decodeFacts(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var facts map[string]any
	if err := dec.Decode(&facts); err != nil {
		return nil, err
	}
	if facts == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after the JSON object")
	}
	return facts, nil
}

// factsReading reports whether a facts worker holds the facts lock now.
func (n *Node) factsReading() bool {
	f, err := os.OpenFile(n.factsLockPath(), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	return false // closing releases it
}

// startFactsRead starts a worker that reads the facts, unless one is
// reading them already.
func (n *Node) startFactsRead() error {
	if err := n.stateProblem(); err != nil {
		return fmt.Errorf("its facts cannot be kept: %w", err)
	}
	if n.factsReading() {
		return nil
	}
	pid, err := n.worker(WorkFacts, "")
	if err != nil {
		return fmt.Errorf("starting the facts worker: %w", err)
	}
	n.log.Printf("facts: worker %d reads them (%s)", pid, strings.Join(n.cfg.Puppet.factsCommand(), " "))
	return nil
}

// workFacts is the facts worker: it runs the facts command once (another
// worker reading them already is enough) and keeps its output, or why it
// failed, in the cache.
func (n *Node) workFacts(ctx context.Context) error {
	f, err := os.OpenFile(n.factsLockPath(), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return nil // another worker is reading them
	}
	if _, fresh, _ := n.cachedFacts(time.Now()); fresh {
		return nil
	}
	start := time.Now()
	facts, err := runFactsCommand(ctx, n.cfg.Puppet.factsCommand(), n.cfg.Puppet.factsTimeout())
	c := factsCache{Read: start, Took: time.Since(start).Round(time.Millisecond).Seconds(), Facts: facts}
	if err != nil {
		c.Error = err.Error()
		n.log.Printf("facts: %v", err)
	} else {
		n.log.Printf("facts: read in %.1fs (%d bytes)", c.Took, len(facts))
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return writeFileAtomic(n.factsPath(), b)
}

// runFactsCommand runs argv in its own process group, killed whole at the
// timeout (Facter forks helpers, and a hung one must not outlive it), and
// returns its output if it is one JSON object.
func runFactsCommand(ctx context.Context, argv []string, timeout time.Duration) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out, errOut cappedBuffer
	out.max, errOut.max = maxFactsBytes, 64<<10
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // helpers left behind
	}
	what := strings.Join(argv, " ")
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return nil, fmt.Errorf("`%s` did not finish within %s (puppet.facts_timeout)", what, timeout)
	case err != nil:
		return nil, fmt.Errorf("`%s` failed: %v%s", what, err, lastLine(errOut.String()))
	case out.over:
		return nil, fmt.Errorf("`%s` printed more than %d bytes", what, maxFactsBytes)
	}
	if _, err := decodeFacts(out.Bytes()); err != nil {
		return nil, fmt.Errorf("`%s` did not print one JSON object of facts: %v%s", what, err, lastLine(errOut.String()))
	}
	return bytes.TrimSpace(out.Bytes()), nil
}

// lastLine is the last line of a command's stderr worth showing (not
// Facter's sandbox noise), as ": line", or "".
func lastLine(stderr string) string {
	lines := strings.Split(stripANSI(stderr), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" && !facterNoise(l) {
			return ": " + l
		}
	}
	return ""
}

// cappedBuffer keeps the first max bytes written to it.
type cappedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.over = true
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// factValue finds a fact by its dotted name (os.family,
// processors.models.0), trying at each level the rest of the name whole
// first, for facts whose own name has dots. A hash or array is its
// compact JSON text; null is no value.
func factValue(facts map[string]any, name string) (string, bool) {
	v, ok := lookupFact(facts, name)
	if !ok || v == nil {
		return "", false
	}
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", false
	}
	return string(b), true
}

func lookupFact(v any, name string) (any, bool) {
	switch v := v.(type) {
	case map[string]any:
		if x, ok := v[name]; ok {
			return x, true
		}
		for i := 0; i < len(name); i++ {
			if name[i] != '.' {
				continue
			}
			if x, ok := v[name[:i]]; ok {
				if found, ok := lookupFact(x, name[i+1:]); ok {
					return found, true
				}
			}
		}
	case []any:
		head, rest, more := strings.Cut(name, ".")
		i, err := strconv.Atoi(head)
		if err != nil || i < 0 || i >= len(v) || strconv.Itoa(i) != head {
			return nil, false
		}
		if !more {
			return v[i], true
		}
		return lookupFact(v[i], rest)
	}
	return nil, false
}

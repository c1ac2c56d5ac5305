package handler

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// answerSelect answers a puppet-status query with Select: does this node
// match the selector on its facts, classes and tags? Every node asked
// answers: match, no match, reading facts (ask again), or why it cannot
// tell, so that the CLI never takes silence for "no" (a lost answer would
// drop a node from a deploy unseen).
func (n *Node) answerSelect(stdout io.Writer, st *protocol.Status, req *protocol.StatusRequest) error {
	st.Phase = protocol.SelectError
	sel, err := protocol.ParseSelector(req.Select)
	if err == nil && req.ID != "" {
		err = fmt.Errorf("a selection is asked without a deploy id")
	}
	if err != nil {
		n.log.Printf("puppet-status rejected: %v", err)
		st.Message = "bad request: " + err.Error()
		return n.writeStatus(stdout, st)
	}
	k := &nodeKnowledge{n: n}
	_, facts, classes := sel.Uses()
	if classes {
		k.classes, k.classErr = readClasses(n.cfg.Puppet.classesFile())
	}
	var fresh bool
	if facts {
		k.facts, fresh, k.factErr = n.cachedFacts(time.Now())
		k.factsKnown = k.facts != nil
	}
	switch t, _ := sel.Reduce(k); {
	case t == protocol.SelectYes:
		st.Phase = protocol.SelectMatch
	case t == protocol.SelectNo:
		st.Phase = protocol.SelectNoMatch
	case facts && !fresh:
		// Unknown until the facts are read: a worker reads them (the
		// handler must answer within a second), and the CLI asks again.
		if err := n.startFactsRead(); err != nil {
			n.log.Printf("select: %v", err)
			st.Message = err.Error()
		} else {
			st.Phase = protocol.SelectPending
		}
	default:
		var why []string
		for _, err := range []error{k.classErr, k.factErr} {
			if err != nil {
				why = append(why, err.Error())
			}
		}
		st.Message = strings.Join(why, "; ")
	}
	return n.writeStatus(stdout, st)
}

// nodeKnowledge is what this node knows for a selector: its serf tags
// (serf passes them to handlers as SERF_TAG_*), the classes of Puppet's
// last catalog, and its cached facts. A kind that could not be read is
// unknown.
type nodeKnowledge struct {
	n          *Node
	classes    map[string]bool
	classErr   error
	facts      map[string]any
	factsKnown bool
	factErr    error
}

func (k *nodeKnowledge) Tag(key string) (string, bool) {
	v, _ := k.n.tag(key)
	return v, true
}

func (k *nodeKnowledge) Fact(name string) (string, bool, bool) {
	if !k.factsKnown {
		return "", false, false
	}
	v, ok := factValue(k.facts, name)
	return v, ok, true
}

func (k *nodeKnowledge) Class(name string) (bool, bool) {
	if k.classErr != nil {
		return false, false
	}
	return k.classes[name], true
}

// maxClassesBytes bounds what is read of classes.txt: a large catalog's
// is some kB.
const maxClassesBytes = 4 << 20

// readClasses reads Puppet's classfile: one class name a line, in lower
// case, written after each catalog the agent applies (`puppet apply`
// writes it only with --write_catalog_summary). A missing file is an
// error, never "no classes": Puppet has not applied a catalog here, and
// the node cannot say what it would have.
func readClasses(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("its Puppet class file %s does not exist: Puppet has applied no catalog here yet (or write_catalog_summary is off)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("its Puppet class file cannot be read: %w", err)
	}
	defer f.Close()
	classes := map[string]bool{}
	sc := bufio.NewScanner(io.LimitReader(f, maxClassesBytes))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		if c := strings.ToLower(strings.TrimSpace(sc.Text())); c != "" {
			classes[c] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("its Puppet class file %s cannot be read: %w", path, err)
	}
	return classes, nil
}

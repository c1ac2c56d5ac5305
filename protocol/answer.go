package protocol

import "fmt"

// Answer is a node's answer to a query: it says which version of the
// protocol it speaks and which node it is.
type Answer interface {
	answerHeader() (version int, node string)
}

func (a *Status) answerHeader() (int, string)     { return a.V, a.Node }
func (a *RunAnswer) answerHeader() (int, string)  { return a.V, a.Node }
func (a *LockAnswer) answerHeader() (int, string) { return a.V, a.Node }

// DecodeAnswerFrom decodes the answer serf delivered from node: the one
// check every reader of an answer makes (DecodeAnswer's keys, a protocol
// version, and the node's own name, so that an answer cannot speak for
// another node).
func DecodeAnswerFrom(b []byte, from string, v Answer) error {
	if err := DecodeAnswer(b, v); err != nil {
		return err
	}
	version, node := v.answerHeader()
	switch {
	case version == 0:
		return fmt.Errorf("not a valid answer: no protocol version")
	case node != from:
		return fmt.Errorf("not a valid answer: it names node %q, serf delivered it from %q", OneLine(node, 64), from)
	}
	return nil
}

// HasRun reports whether a node's answer for an id shows a run record of
// it ("unknown", or empty from an older node, means none).
func (a *Status) HasRun() bool { return a.Phase != "" && a.Phase != PhaseUnknown }

// HasSync reports whether a master's answer for an id shows a code-sync
// record of it.
func (a *Status) HasSync() bool { return a.Sync != "" && a.Sync != PhaseUnknown }

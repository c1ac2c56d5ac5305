package protocol

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
)

// A Selector is a filter on what Puppet knows of a node: its facts and the
// classes of its last catalog (MCollective's -F, -C and -S), with its serf
// tags. The CLI evaluates what it can itself (the tags, from the member
// list) and sends the rest in a puppet-status query (StatusRequest.Select);
// each node asked evaluates it against its own facts and classes.
//
// Grammar (docs/commands.md, Filters):
//
//	expr  = and { "or" and }
//	and   = unary { "and" unary }
//	unary = "not" unary | "(" expr ")" | term
//	term  = "tag:" KEY "=" REGEXP | "fact:" NAME "=" REGEXP | "class:" NAME
//
// Words and parentheses are separated by white space or by the
// parentheses themselves. A REGEXP runs to the next white space or to a
// ")" that closes no "(" of its own (escaped and bracketed characters do
// not count), is matched against the whole value, as --tag's is, and
// writes a space as \s or \x20. A NAME of a fact is dotted for nested
// facts (os.family, processors.models.0); a class is a Puppet class name
// (ntp, profile::web), compared in lower case as Puppet does.
type Selector struct {
	op   selectorOp
	key  string // tag key, fact name or class name
	re   string // as given; matched anchored
	rx   *regexp.Regexp
	args []*Selector // the operands of not, and, or
}

type selectorOp uint8

const (
	opTag selectorOp = iota
	opFact
	opClass
	opNot
	opAnd
	opOr
)

// Limits on a selector. Any cluster member can send one to every node, so
// a node parses it with bounds: the text (a query is at most 1024 bytes
// anyway), the nesting (the parser recurses), the terms, and each
// regexp's compiled program (a counted repetition such as x{1000} is a
// thousand instructions; Go refuses more than 1000 repetitions, not their
// product across terms).
const (
	MaxSelectorText  = 1024
	maxSelectorDepth = 16
	maxSelectorTerms = 32
	maxRegexpInsts   = 2000
	maxSelectorName  = 128
)

// Answers to a puppet-status query with Select, in Status.Phase.
const (
	SelectMatch   = "match"         // the node matches the selection
	SelectNoMatch = "no_match"      // it does not
	SelectPending = "reading_facts" // a worker is reading its facts: ask again
	SelectError   = "select_error"  // its facts or classes cannot be read; Message says why
)

// Truth is a selector's value on a node: yes, no, or unknown while a term
// it depends on is not known (the CLI does not know facts; a node whose
// facts cannot be read does not either).
type Truth uint8

const (
	SelectNo Truth = iota
	SelectYes
	SelectUnknown
)

// Knowledge is what the evaluator may ask of one node. known false means
// the asker cannot tell (not read yet, or unreadable).
type Knowledge interface {
	// Tag is the node's tag value, "" when it has none (as serf's own
	// filters read a missing tag).
	Tag(key string) (value string, known bool)
	// Fact is the fact's value as text; present false when the node has
	// no such fact.
	Fact(name string) (value string, present, known bool)
	// Class says whether the node's last catalog had the class.
	Class(name string) (has, known bool)
}

// ParseSelector parses text in the grammar above.
func ParseSelector(text string) (*Selector, error) {
	if len(text) > MaxSelectorText {
		return nil, fmt.Errorf("the selection is %d bytes, over %d", len(text), MaxSelectorText)
	}
	p := &selParser{s: text}
	if p.peek().kind == tokEnd {
		return nil, fmt.Errorf("the selection is empty: give terms such as fact:os.family=Debian or class:ntp")
	}
	sel, err := p.or(0)
	if err != nil {
		return nil, fmt.Errorf("selection %q: %w", Truncate(text, 120), err)
	}
	if t := p.peek(); t.kind == tokBad {
		return nil, fmt.Errorf("selection %q: %w", Truncate(text, 120), t.err)
	} else if t.kind != tokEnd {
		return nil, fmt.Errorf("selection %q: %s where and, or or the end was expected", Truncate(text, 120), t.describe())
	}
	return sel, nil
}

// NewFactTerm is fact:NAME=REGEXP, for --fact.
func NewFactTerm(name, re string) (*Selector, error) {
	return newTerm(opFact, name, re)
}

// NewClassTerm is class:NAME, for --class.
func NewClassTerm(name string) (*Selector, error) {
	return newTerm(opClass, name, "")
}

// AllOf is the conjunction of the selectors (nil ones left out); nil when
// there are none.
func AllOf(sels ...*Selector) *Selector {
	var args []*Selector
	for _, s := range sels {
		if s == nil {
			continue
		}
		if s.op == opAnd {
			args = append(args, s.args...)
		} else {
			args = append(args, s)
		}
	}
	switch len(args) {
	case 0:
		return nil
	case 1:
		return args[0]
	}
	return &Selector{op: opAnd, args: args}
}

func newTerm(op selectorOp, key, re string) (*Selector, error) {
	s := &Selector{op: op, key: key, re: re}
	switch op {
	case opClass:
		name := strings.TrimPrefix(strings.ToLower(key), "::")
		if !className.MatchString(name) {
			return nil, fmt.Errorf("class %q is not a Puppet class name (e.g. ntp or profile::web)", Truncate(key, 64))
		}
		s.key = name
		return s, nil
	case opFact:
		if !factName.MatchString(key) {
			return nil, fmt.Errorf("fact name %q is not valid: letters, digits and _ . : / @ + -, dotted for nested facts (e.g. os.family)", Truncate(key, 64))
		}
	case opTag:
		if err := ValidTagFilter(key, re); err != nil {
			return nil, err
		}
		if strings.IndexFunc(key, isSelectorSpace) >= 0 || strings.ContainsAny(key, "()") {
			return nil, fmt.Errorf("tag key %q: a selection cannot name a key with spaces or parentheses (use --tag)", Truncate(key, 64))
		}
	}
	rx, err := compileBounded(re)
	if err != nil {
		return nil, fmt.Errorf("%s:%s=%s: %w", opName(op), OneLine(key, 64), OneLine(re, 64), err)
	}
	s.rx = rx
	return s, nil
}

var (
	className = boundedName{maxSelectorName, regexp.MustCompile(`^[a-z0-9_]+(::[a-z0-9_]+)*$`)}
	factName  = boundedName{maxSelectorName, regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:/@+-]*$`)}
)

// compileBounded compiles re anchored, refusing a program over
// maxRegexpInsts instructions.
func compileBounded(re string) (*regexp.Regexp, error) {
	anchored := "^(?:" + re + ")$"
	parsed, err := syntax.Parse(anchored, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("the regexp does not compile: %s", OneLine(err.Error(), 200))
	}
	prog, err := syntax.Compile(parsed.Simplify())
	if err != nil {
		return nil, fmt.Errorf("the regexp does not compile: %s", OneLine(err.Error(), 200))
	}
	if len(prog.Inst) > maxRegexpInsts {
		return nil, fmt.Errorf("the regexp is too large (%d instructions compiled, at most %d): use fewer counted repetitions", len(prog.Inst), maxRegexpInsts)
	}
	return regexp.Compile(anchored)
}

func opName(op selectorOp) string {
	return [...]string{"tag", "fact", "class", "not", "and", "or"}[op]
}

// Uses says which kinds of terms the selector has.
func (s *Selector) Uses() (tags, facts, classes bool) {
	s.walk(func(t *Selector) {
		switch t.op {
		case opTag:
			tags = true
		case opFact:
			facts = true
		case opClass:
			classes = true
		}
	})
	return
}

func (s *Selector) walk(fn func(*Selector)) {
	fn(s)
	for _, a := range s.args {
		a.walk(fn)
	}
}

// Reduce evaluates the selector with what k knows: yes or no, or unknown
// with the part still to decide (every known term folded away), which is
// what the CLI sends to the nodes.
func (s *Selector) Reduce(k Knowledge) (Truth, *Selector) {
	switch s.op {
	case opTag:
		v, known := k.Tag(s.key)
		return s.termTruth(known, true, v)
	case opFact:
		v, present, known := k.Fact(s.key)
		return s.termTruth(known, present, v)
	case opClass:
		has, known := k.Class(s.key)
		if !known {
			return SelectUnknown, s
		}
		return truth(has), nil
	case opNot:
		t, rest := s.args[0].Reduce(k)
		switch t {
		case SelectYes:
			return SelectNo, nil
		case SelectNo:
			return SelectYes, nil
		}
		return SelectUnknown, &Selector{op: opNot, args: []*Selector{rest}}
	}
	// and, or: the value that decides (no for and, yes for or) wins over
	// unknown, as in Kleene's logic: a node whose facts cannot be read
	// still does not match "class:x and fact:y=z" when it lacks class x.
	decisive := truth(s.op == opOr)
	var rest []*Selector
	for _, a := range s.args {
		t, r := a.Reduce(k)
		switch t {
		case decisive:
			return decisive, nil
		case SelectUnknown:
			rest = append(rest, r)
		}
	}
	switch len(rest) {
	case 0:
		return 1 - decisive, nil // every operand was the other value
	case 1:
		return SelectUnknown, rest[0]
	}
	return SelectUnknown, &Selector{op: s.op, args: rest}
}

func (s *Selector) termTruth(known, present bool, value string) (Truth, *Selector) {
	if !known {
		return SelectUnknown, s
	}
	return truth(present && s.rx.MatchString(value)), nil
}

func truth(b bool) Truth {
	if b {
		return SelectYes
	}
	return SelectNo
}

// String is the selector in the grammar, in a canonical form that parses
// back to the same selector: one space between words, parentheses only
// where precedence needs them, white space in a regexp written \x{..}.
func (s *Selector) String() string {
	var b strings.Builder
	s.write(&b)
	return b.String()
}

func (s *Selector) write(b *strings.Builder) {
	switch s.op {
	case opTag, opFact:
		b.WriteString(opName(s.op) + ":" + s.key + "=" + escapeSpaces(s.re))
	case opClass:
		b.WriteString("class:" + s.key)
	case opNot:
		b.WriteString("not ")
		s.args[0].writeOperand(b, opNot)
	default:
		for i, a := range s.args {
			if i > 0 {
				b.WriteString(" " + opName(s.op) + " ")
			}
			a.writeOperand(b, s.op)
		}
	}
}

// writeOperand writes s as an operand of parent, in parentheses when it
// binds less tightly (or under not, and under and).
func (s *Selector) writeOperand(b *strings.Builder, parent selectorOp) {
	paren := s.op == opOr && parent != opOr || s.op == opAnd && parent == opNot
	if paren {
		b.WriteByte('(')
	}
	s.write(b)
	if paren {
		b.WriteByte(')')
	}
}

// escapeSpaces writes each white-space character of a regexp as \x{..}:
// in a valid Go regexp white space is a literal (a backslash before it is
// an error), so the escape matches the same. Inside \Q...\E, where an
// escape would be literal text, the quote is closed around it.
func escapeSpaces(re string) string {
	if strings.IndexFunc(re, isSelectorSpace) < 0 {
		return re
	}
	var b strings.Builder
	quoted := false
	for i := 0; i < len(re); i++ {
		c := re[i]
		switch {
		case quoted && strings.HasPrefix(re[i:], `\E`):
			quoted = false
			b.WriteString(`\E`)
			i++
		case !quoted && c == '\\' && i+1 < len(re):
			quoted = re[i+1] == 'Q'
			b.WriteString(re[i : i+2])
			i++
		case isSelectorSpace(rune(c)) && quoted:
			fmt.Fprintf(&b, `\E\x{%x}\Q`, c)
		case isSelectorSpace(rune(c)):
			fmt.Fprintf(&b, `\x{%x}`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// isSelectorSpace is what separates words: ASCII white space. Other
// Unicode spaces are left to the regexps, which take them literally.
func isSelectorSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
}

package protocol

import (
	"fmt"
	"strings"
)

// The selector's recursive-descent parser (grammar in selector.go).

type tokKind uint8

const (
	tokEnd tokKind = iota
	tokOpen
	tokClose
	tokAnd
	tokOr
	tokNot
	tokTerm
	tokBad
)

type token struct {
	kind tokKind
	text string
	term *Selector // tokTerm
	err  error     // tokBad, or a term that does not compile
}

func (t token) describe() string {
	switch t.kind {
	case tokEnd:
		return "the end"
	case tokOpen, tokClose:
		return fmt.Sprintf("%q", t.text)
	}
	return fmt.Sprintf("%q", Truncate(t.text, 64))
}

type selParser struct {
	s     string
	pos   int
	next  *token // the token peeked at, not yet taken
	terms int
}

func (p *selParser) peek() token {
	if p.next == nil {
		t := p.scan()
		p.next = &t
	}
	return *p.next
}

func (p *selParser) take() token {
	t := p.peek()
	p.next = nil
	return t
}

// or = and { "or" and }
func (p *selParser) or(depth int) (*Selector, error) {
	return p.list(depth, tokOr, opOr, p.and)
}

// and = unary { "and" unary }
func (p *selParser) and(depth int) (*Selector, error) {
	return p.list(depth, tokAnd, opAnd, p.unary)
}

func (p *selParser) list(depth int, sep tokKind, op selectorOp, operand func(int) (*Selector, error)) (*Selector, error) {
	first, err := operand(depth)
	if err != nil {
		return nil, err
	}
	args := []*Selector{first}
	for p.peek().kind == sep {
		p.take()
		next, err := operand(depth)
		if err != nil {
			return nil, err
		}
		args = append(args, next)
	}
	if len(args) == 1 {
		return first, nil
	}
	// a and (b and c) is a and b and c: one flat list, as String writes it.
	var flat []*Selector
	for _, a := range args {
		if a.op == op {
			flat = append(flat, a.args...)
		} else {
			flat = append(flat, a)
		}
	}
	return &Selector{op: op, args: flat}, nil
}

// unary = "not" unary | "(" expr ")" | term
func (p *selParser) unary(depth int) (*Selector, error) {
	if depth >= maxSelectorDepth {
		return nil, fmt.Errorf("nested more than %d deep", maxSelectorDepth)
	}
	t := p.take()
	switch t.kind {
	case tokNot:
		inner, err := p.unary(depth + 1)
		if err != nil {
			return nil, err
		}
		return &Selector{op: opNot, args: []*Selector{inner}}, nil
	case tokOpen:
		inner, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if c := p.take(); c.kind == tokBad {
			return nil, c.err
		} else if c.kind != tokClose {
			return nil, fmt.Errorf("%s where \")\" was expected", c.describe())
		}
		return inner, nil
	case tokTerm:
		if p.terms++; p.terms > maxSelectorTerms {
			return nil, fmt.Errorf("more than %d terms", maxSelectorTerms)
		}
		return t.term, nil
	case tokBad:
		return nil, t.err
	}
	return nil, fmt.Errorf("%s where a term (tag:KEY=REGEXP, fact:NAME=REGEXP, class:NAME), not or \"(\" was expected", t.describe())
}

// scan reads the next token.
func (p *selParser) scan() token {
	for p.pos < len(p.s) && isSelectorSpace(rune(p.s[p.pos])) {
		p.pos++
	}
	if p.pos == len(p.s) {
		return token{kind: tokEnd}
	}
	rest := p.s[p.pos:]
	switch rest[0] {
	case '(':
		p.pos++
		return token{kind: tokOpen, text: "("}
	case ')':
		p.pos++
		return token{kind: tokClose, text: ")"}
	}
	for _, prefix := range []string{"tag:", "fact:", "class:"} {
		if strings.HasPrefix(rest, prefix) {
			return p.term(prefix)
		}
	}
	word := rest[:wordEnd(rest)]
	p.pos += len(word)
	switch word {
	case "and":
		return token{kind: tokAnd, text: word}
	case "or":
		return token{kind: tokOr, text: word}
	case "not":
		return token{kind: tokNot, text: word}
	}
	hint := ""
	if l := strings.ToLower(word); l == "and" || l == "or" || l == "not" {
		hint = ": the operators are written in lower case"
	} else if strings.ContainsAny(word, "=:") {
		hint = ": a term starts with tag:, fact: or class:"
	}
	return token{kind: tokBad, text: word, err: fmt.Errorf("unknown word %q%s", Truncate(word, 64), hint)}
}

// wordEnd is where a word ends: white space or a parenthesis.
func wordEnd(s string) int {
	for i := 0; i < len(s); i++ {
		if isSelectorSpace(rune(s[i])) || s[i] == '(' || s[i] == ')' {
			return i
		}
	}
	return len(s)
}

// term reads tag:KEY=REGEXP, fact:NAME=REGEXP or class:NAME.
func (p *selParser) term(prefix string) token {
	start := p.pos
	body := p.s[p.pos+len(prefix):]
	bad := func(err error) token {
		return token{kind: tokBad, text: p.s[start:p.pos], err: err}
	}
	if prefix == "class:" {
		name := body[:wordEnd(body)]
		p.pos += len(prefix) + len(name)
		sel, err := NewClassTerm(name)
		if err != nil {
			return bad(err)
		}
		return token{kind: tokTerm, text: p.s[start:p.pos], term: sel}
	}
	key, _, ok := strings.Cut(body[:wordEnd(body)], "=")
	if !ok {
		p.pos += len(prefix) + wordEnd(body)
		return bad(fmt.Errorf("%q: a %s term is %sNAME=REGEXP", Truncate(p.s[start:p.pos], 64), strings.TrimSuffix(prefix, ":"), prefix))
	}
	re := body[len(key)+1:]
	re = re[:regexpEnd(re)]
	p.pos += len(prefix) + len(key) + 1 + len(re)
	op := opFact
	if prefix == "tag:" {
		op = opTag
	}
	sel, err := newTerm(op, key, re)
	if err != nil {
		return bad(err)
	}
	return token{kind: tokTerm, text: p.s[start:p.pos], term: sel}
}

// regexpEnd is where a term's regexp ends: at white space, or at a ")"
// that closes no "(" of the regexp. Escaped characters, \Q...\E and
// bracketed classes do not count, so (a|b), [)] and \) stay in it.
func regexpEnd(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isSelectorSpace(rune(c)):
			return i
		case c == '\\' && i+1 < len(s) && s[i+1] == 'Q':
			end := strings.Index(s[i+2:], `\E`)
			if sp := strings.IndexFunc(s[i+2:], isSelectorSpace); sp >= 0 && (end < 0 || sp < end) {
				return i + 2 + sp
			}
			if end < 0 {
				return len(s)
			}
			i += 2 + end + 1
		case c == '\\':
			i++
		case c == '[':
			i = classEnd(s, i)
			if i >= len(s) {
				return len(s)
			}
			if isSelectorSpace(rune(s[i])) {
				return i
			}
		case c == '(':
			depth++
		case c == ')':
			if depth == 0 {
				return i
			}
			depth--
		}
	}
	return len(s)
}

// classEnd is the index of the "]" closing the class opened at s[open],
// or of white space met first, or len(s). A "]" right after "[" or "[^",
// an escaped one and one closing [:alpha:] belong to the class.
func classEnd(s string, open int) int {
	i := open + 1
	if i < len(s) && s[i] == '^' {
		i++
	}
	if i < len(s) && s[i] == ']' {
		i++
	}
	for ; i < len(s); i++ {
		switch {
		case isSelectorSpace(rune(s[i])):
			return i
		case s[i] == '\\':
			i++
		case strings.HasPrefix(s[i:], "[:"):
			if end := strings.Index(s[i+2:], ":]"); end >= 0 && strings.IndexFunc(s[i+2:i+2+end], isSelectorSpace) < 0 {
				i += 2 + end + 1
			}
		case s[i] == ']':
			return i
		}
	}
	return len(s)
}

package protocol

import (
	"encoding/json"
	"hash/fnv"
	"strings"
	"testing"
)

// known is a node's knowledge for the tests: what it does not list, it
// does not have; with the whole kind unknown, it cannot tell.
type known struct {
	tags    map[string]string
	facts   map[string]string
	classes map[string]bool
	// noTags, noFacts, noClasses: that kind is not known (the CLI knows
	// no facts; a node whose facts cannot be read neither).
	noTags, noFacts, noClasses bool
}

func (k known) Tag(key string) (string, bool) { return k.tags[key], !k.noTags }
func (k known) Fact(name string) (string, bool, bool) {
	v, ok := k.facts[name]
	return v, ok, !k.noFacts
}
func (k known) Class(name string) (bool, bool) { return k.classes[name], !k.noClasses }

var webDebian = known{
	tags:    map[string]string{"segment": "qa", "fqdn": "web-01"},
	facts:   map[string]string{"os.family": "Debian", "os.release.major": "12", "is_virtual": "true", "os.name": "Red Hat"},
	classes: map[string]bool{"ntp": true, "profile::web": true, "settings": true},
}

func TestParseSelectorCanonicalForm(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"class:ntp", "class:ntp"},
		{"  class:NTP  ", "class:ntp"},
		{"class:::profile::web", "class:profile::web"},
		{"fact:os.family=Debian", "fact:os.family=Debian"},
		{"fact:os.family=(Debian|RedHat)", "fact:os.family=(Debian|RedHat)"},
		{"(fact:os.family=(Debian|RedHat))", "fact:os.family=(Debian|RedHat)"},
		{"(fact:os.family=(Debian|RedHat) or class:web)", "fact:os.family=(Debian|RedHat) or class:web"},
		{"tag:segment=qa and not class:ntp", "tag:segment=qa and not class:ntp"},
		{"a", ""}, // error, below
		{"class:a and class:b or class:c", "class:a and class:b or class:c"},
		{"class:a and (class:b or class:c)", "class:a and (class:b or class:c)"},
		{"class:a and (class:b and class:c)", "class:a and class:b and class:c"},
		{"not (class:a and class:b)", "not (class:a and class:b)"},
		{"not(class:a)", "not class:a"},
		{"not not class:a", "not not class:a"},
		{"(class:a)and(class:b)", "class:a and class:b"},
		{"fact:x=[)(] and class:b", "fact:x=[)(] and class:b"},
		{`fact:x=\) and class:b`, `fact:x=\) and class:b`},
		{`fact:x=[]a] or class:b`, `fact:x=[]a] or class:b`},
		{`fact:x=[[:alpha:])]+`, `fact:x=[[:alpha:])]+`},
		{`fact:x=\Q)(\E`, `fact:x=\Q)(\E`},
		{"fact:x= and class:b", "fact:x= and class:b"},
		{"fact:os.name=Red\\x20Hat", "fact:os.name=Red\\x20Hat"},
		{"tag:role=puppet.*", "tag:role=puppet.*"},
	} {
		sel, err := ParseSelector(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("%q parsed as %s", c.in, sel)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got := sel.String(); got != c.want {
			t.Errorf("%q: canonical %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseSelectorRefusesBadInput(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "empty"},
		{"   ", "empty"},
		{"class:a and", "the end"},
		{"class:a or or class:b", `"or"`},
		{"(class:a", `")" was expected`},
		{"class:a)", `")" where and, or or the end`},
		{"class:a class:b", "where and, or or the end"},
		{"class:a AND class:b", "lower case"},
		{"os.family=Debian", "a term starts with tag:, fact: or class:"},
		{"fact:os.family", "fact:NAME=REGEXP"},
		{"fact:os.family=(Debian", "does not compile"},
		{"fact:=x", "fact name"},
		{"fact:a b=x", "fact:NAME=REGEXP"},
		{"class:Web-Server", "not a Puppet class name"},
		{"class:", "not a Puppet class name"},
		{"tag:=x", "must be key=regexp"},
		{`fact:x=\Qabc`, "does not compile"},
		{"fact:x=a{1000}b{1000}c{1000}", "too large"},
		{"fact:x=(a{1000}){1000}", "does not compile"},
		{strings.Repeat("(", 20) + "class:a" + strings.Repeat(")", 20), "nested"},
		{strings.Repeat("not ", 20) + "class:a", "nested"},
		{strings.TrimSuffix(strings.Repeat("class:a or ", 40), " or "), "more than 32 terms"},
		{"class:" + strings.Repeat("a", 1100), "over 1024"},
	} {
		sel, err := ParseSelector(c.in)
		if err == nil {
			t.Errorf("%q parsed as %s", c.in, sel)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || strings.ContainsAny(err.Error(), "\n\r") {
			t.Errorf("%q: error %q, want it to say %q on one line", c.in, err, c.want)
		}
	}
}

func TestSelectorEvaluates(t *testing.T) {
	for _, c := range []struct {
		sel  string
		want Truth
	}{
		{"fact:os.family=Debian", SelectYes},
		{"fact:os.family=Deb", SelectNo}, // the whole value, as --tag
		{"fact:os.family=(Debian|RedHat)", SelectYes},
		{"fact:os.release.major=1[0-9]", SelectYes},
		{"fact:missing=.*", SelectNo}, // a fact the node lacks matches nothing
		{"not fact:missing=.*", SelectYes},
		{"fact:os.name=Red\\x20Hat", SelectYes},
		{"fact:os.name=Red\\sHat", SelectYes},
		{"class:ntp", SelectYes},
		{"class:NTP", SelectYes},
		{"class:apache", SelectNo},
		{"class:profile::web and not class:apache", SelectYes},
		{"tag:segment=qa and fact:is_virtual=true", SelectYes},
		{"tag:segment=q", SelectNo},
		{"tag:missing=", SelectYes}, // a missing tag reads "", as in serf's filters
		{"class:apache or (tag:segment=qa and class:ntp)", SelectYes},
		{"class:apache or tag:segment=prod", SelectNo},
	} {
		sel, err := ParseSelector(c.sel)
		if err != nil {
			t.Fatalf("%q: %v", c.sel, err)
		}
		if got, rest := sel.Reduce(webDebian); got != c.want || rest != nil {
			t.Errorf("%q: %v (rest %v), want %v", c.sel, got, rest, c.want)
		}
	}
}

// The CLI knows the tags; what it sends is the rest.
func TestSelectorReducesWhatIsKnown(t *testing.T) {
	cli := webDebian
	cli.noFacts, cli.noClasses = true, true
	for _, c := range []struct {
		sel  string
		want Truth
		rest string
	}{
		{"tag:segment=qa", SelectYes, ""},
		{"tag:segment=prod and fact:os.family=Debian", SelectNo, ""},
		{"tag:segment=qa and fact:os.family=Debian", SelectUnknown, "fact:os.family=Debian"},
		{"tag:segment=qa or fact:os.family=Debian", SelectYes, ""},
		{"tag:segment=prod or fact:os.family=Debian and class:ntp", SelectUnknown, "fact:os.family=Debian and class:ntp"},
		{"not (tag:segment=qa and class:ntp)", SelectUnknown, "not class:ntp"},
		{"(tag:segment=prod or class:a) and (tag:fqdn=web-.* or class:b)", SelectUnknown, "class:a"},
	} {
		sel, err := ParseSelector(c.sel)
		if err != nil {
			t.Fatal(err)
		}
		got, rest := sel.Reduce(cli)
		restText := ""
		if rest != nil {
			restText = rest.String()
		}
		if got != c.want || restText != c.rest {
			t.Errorf("%q: %v %q, want %v %q", c.sel, got, restText, c.want, c.rest)
		}
	}
	// A node whose facts cannot be read is still decided by its classes
	// when they decide.
	node := webDebian
	node.noFacts = true
	for sel, want := range map[string]Truth{
		"class:apache and fact:os.family=Debian": SelectNo,
		"class:ntp or fact:os.family=Debian":     SelectYes,
		"class:ntp and fact:os.family=Debian":    SelectUnknown,
	} {
		s, _ := ParseSelector(sel)
		if got, _ := s.Reduce(node); got != want {
			t.Errorf("%q with facts unknown: %v, want %v", sel, got, want)
		}
	}
}

func TestSelectorTermsFromFlags(t *testing.T) {
	fact, err := NewFactTerm("os.name", "Red Hat|Debian GNU/Linux")
	if err != nil {
		t.Fatal(err)
	}
	class, err := NewClassTerm("Profile::Web")
	if err != nil {
		t.Fatal(err)
	}
	sel := AllOf(fact, class, nil)
	want := `fact:os.name=Red\x{20}Hat|Debian\x{20}GNU/Linux and class:profile::web`
	if sel.String() != want {
		t.Fatalf("%s, want %s", sel, want)
	}
	back, err := ParseSelector(sel.String())
	if err != nil || back.String() != want {
		t.Fatalf("%v %v", back, err)
	}
	if got, _ := back.Reduce(webDebian); got != SelectYes {
		t.Fatalf("%s on a Red Hat node with profile::web: %v", back, got)
	}
	quoted, err := NewFactTerm("os.name", `\QRed Hat\E`)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := ParseSelector(quoted.String()); err != nil {
		t.Fatalf("%s: %v", quoted, err)
	} else if got, _ := back.Reduce(webDebian); got != SelectYes {
		t.Fatalf("%s: %v", back, got)
	}
	if AllOf() != nil || AllOf(nil, nil) != nil {
		t.Fatal("AllOf of nothing is not nil")
	}
	if _, err := NewFactTerm("os family", "x"); err == nil {
		t.Fatal("a fact name with a space passed")
	}
	tags, facts, classes := sel.Uses()
	if tags || !facts || !classes {
		t.Fatalf("Uses: %v %v %v", tags, facts, classes)
	}
}

// A selection of 400 bytes fits a query with a 253-character node name
// (the CLI checks each one so); serf's 1024 bytes are the real bound.
func TestSelectorInAQuery(t *testing.T) {
	sel, err := ParseSelector(strings.TrimSuffix(strings.Repeat("class:profile::web or ", 18), " or "))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(StatusRequest{Select: sel.String()})
	if len(sel.String()) < 390 || !QueryFits(QueryPuppetStatus, b, []string{strings.Repeat("n", 253)}, nil, 5e9, "cli") {
		t.Fatalf("a %d-byte selection does not fit one query", len(sel.String()))
	}
	var req StatusRequest
	if err := DecodeStrict(b, &req); err != nil || req.Select != sel.String() {
		t.Fatalf("%v %+v", err, req)
	}
}

// guess is a node whose every fact and class is decided by a hash of its
// name, and every tag too: the fuzz target evaluates with it.
type guess struct {
	seed    uint32
	partial bool // tags only, as the CLI knows them
	noFacts bool
	noClass bool
}

func (g guess) bit(kind, name string) bool {
	h := fnv.New32a()
	h.Write([]byte(kind + "\x00" + name))
	return (h.Sum32()^g.seed)&1 == 1
}
func (g guess) Tag(key string) (string, bool) {
	if g.bit("tag", key) {
		return "qa", true
	}
	return "", true
}
func (g guess) Fact(name string) (string, bool, bool) {
	if g.partial || g.noFacts {
		return "", false, false
	}
	return "Debian", g.bit("fact", name), true
}
func (g guess) Class(name string) (bool, bool) {
	if g.partial || g.noClass {
		return false, false
	}
	return g.bit("class", name), true
}

func FuzzSelector(f *testing.F) {
	for _, s := range []string{
		"class:ntp", "fact:os.family=Debian", "tag:segment=qa and not class:ntp",
		"(fact:os.family=(Debian|RedHat) or class:web) and not tag:role=puppetmaster",
		`fact:x=[)(] and class:b`, `fact:x=\Q)( \E`, `fact:x=[[:alpha:] ]`, "not(not(class:a))",
		"class:a and", "((((class:a", "fact:x=a{1000}", "fact:x=(?i)deb.*", "fact:x=\\", "fact:x=[",
		"tag:a=b)or(class:c", "fact:a=\u00a0", "class:a\x00", "fact:a.b.0=1 or fact:a=\xff",
	} {
		f.Add(s, uint32(1))
	}
	f.Fuzz(func(t *testing.T, text string, seed uint32) {
		sel, err := ParseSelector(text)
		if err != nil {
			checkOneLine(t, "ParseSelector", err)
			return
		}
		canon := sel.String()
		back, err := ParseSelector(canon)
		if err != nil {
			t.Fatalf("%q parsed, its canonical form %q does not: %v", text, canon, err)
		}
		if back.String() != canon {
			t.Fatalf("canonical form not stable: %q -> %q -> %q", text, canon, back.String())
		}
		full := guess{seed: seed}
		want, rest := sel.Reduce(full)
		if want == SelectUnknown || rest != nil {
			t.Fatalf("%q with everything known: %v %v", canon, want, rest)
		}
		if got, _ := back.Reduce(full); got != want {
			t.Fatalf("%q and its canonical form %q disagree: %v %v", text, canon, want, got)
		}
		// What the CLI sends (the part its tags do not decide) decides the
		// same on the node.
		cli, rest := sel.Reduce(guess{seed: seed, partial: true})
		switch cli {
		case SelectUnknown:
			sent, err := ParseSelector(rest.String())
			if err != nil {
				t.Fatalf("the rest %q of %q does not parse: %v", rest, canon, err)
			}
			if tags, _, _ := sent.Uses(); tags {
				t.Fatalf("the rest %q of %q still has tags", rest, canon)
			}
			if got, _ := sent.Reduce(full); got != want {
				t.Fatalf("%q: the node decides the rest %q %v, the whole is %v", canon, rest, got, want)
			}
		case want:
		default:
			t.Fatalf("%q: the tags alone say %v, everything %v", canon, cli, want)
		}
		// Unknown facts never turn a decided selection around.
		if got, _ := sel.Reduce(guess{seed: seed, noFacts: true}); got != SelectUnknown && got != want {
			t.Fatalf("%q: %v without facts, %v with them", canon, got, want)
		}
	})
}

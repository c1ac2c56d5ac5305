package iostreams

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestColorDecisions(t *testing.T) {
	cases := []struct {
		tty, noColor bool
		mode         string
		want         bool
	}{
		{true, false, "auto", true},
		{true, true, "auto", false},   // NO_COLOR
		{false, false, "auto", false}, // a pipe or a CI log
		{false, false, "always", true},
		{true, true, "always", true}, // explicit beats NO_COLOR
		{true, false, "never", false},
	}
	for _, c := range cases {
		s := &IOStreams{stdoutTTY: c.tty, noColor: c.noColor}
		if err := s.SetColorMode(c.mode); err != nil {
			t.Fatal(err)
		}
		if s.ColorEnabled() != c.want {
			t.Errorf("tty %v NO_COLOR %v --color %s: colour %v", c.tty, c.noColor, c.mode, !c.want)
		}
		painted := s.ColorScheme().Red("x")
		if (painted != "x") != c.want {
			t.Errorf("painted %q with colour %v", painted, c.want)
		}
	}
	if err := (&IOStreams{}).SetColorMode("pink"); err == nil {
		t.Error("--color pink accepted")
	}
}

func TestProgressInALogIsTimestampedPlainLines(t *testing.T) {
	var errb bytes.Buffer
	s := Test(nil, nil, &errb)
	s.now = func() time.Time { return time.Date(2026, 11, 24, 20, 1, 2, 0, time.UTC) }
	s.StartProgress("deploy x") // no spinner without a terminal
	s.Progressf("agent-01 %s", "running")
	s.StopProgress()
	if got := errb.String(); got != "2026-11-24T20:01:02Z agent-01 running\n" {
		t.Fatalf("%q", got)
	}
	if regexp.MustCompile("\x1b").MatchString(errb.String()) || strings.Contains(errb.String(), "\r") {
		t.Fatal("escape codes in a log")
	}
}

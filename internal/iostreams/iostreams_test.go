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
		outTTY, errTTY bool
		env            map[string]string
		mode           string
		wantOut        bool
		wantErr        bool
	}{
		{true, true, nil, "auto", true, true},
		{true, false, nil, "auto", true, false}, // stderr to a file: no colour there
		{false, true, nil, "auto", false, true},
		{true, true, map[string]string{"NO_COLOR": "1"}, "auto", false, false},
		{false, false, nil, "auto", false, false}, // a pipe or a CI log
		{false, false, nil, "always", true, true},
		{true, true, map[string]string{"NO_COLOR": "1"}, "always", true, true}, // explicit beats NO_COLOR
		{true, true, nil, "never", false, false},
		{true, true, map[string]string{"CLICOLOR": "0"}, "auto", false, false},
		{false, false, map[string]string{"CLICOLOR_FORCE": "1"}, "auto", true, true},
		{false, false, map[string]string{"CLICOLOR_FORCE": "0"}, "auto", false, false},
		{false, false, map[string]string{"CLICOLOR_FORCE": "1", "NO_COLOR": "1"}, "auto", false, false},
		{false, false, map[string]string{"CLICOLOR_FORCE": "1"}, "never", false, false},
		{true, true, map[string]string{"TERM": "dumb"}, "auto", false, false},
	}
	for _, c := range cases {
		s := Test(nil, nil, nil)
		s.SetStdoutTTY(c.outTTY)
		s.SetStderrTTY(c.errTTY)
		s.ReadEnv(func(k string) string { return c.env[k] })
		if err := s.SetColorMode(c.mode); err != nil {
			t.Fatal(err)
		}
		if s.ColorEnabled() != c.wantOut || s.ErrColorEnabled() != c.wantErr {
			t.Errorf("tty out %v err %v, env %v, --color %s: colour out %v err %v, want %v %v",
				c.outTTY, c.errTTY, c.env, c.mode, s.ColorEnabled(), s.ErrColorEnabled(), c.wantOut, c.wantErr)
		}
		if painted := s.ColorScheme().Red("x"); (painted != "x") != c.wantOut {
			t.Errorf("stdout painted %q with colour %v", painted, c.wantOut)
		}
		if painted := s.ErrColorScheme().Red("x"); (painted != "x") != c.wantErr {
			t.Errorf("stderr painted %q with colour %v", painted, c.wantErr)
		}
	}
	if err := Test(nil, nil, nil).SetColorMode("pink"); err == nil {
		t.Error("--color pink accepted")
	}
}

func TestProgressInALogIsTimestampedPlainLines(t *testing.T) {
	var errb bytes.Buffer
	s := Test(nil, nil, &errb)
	s.SetNow(func() time.Time { return time.Date(2026, 11, 24, 20, 1, 2, 0, time.UTC) })
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

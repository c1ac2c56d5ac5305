// Package iostreams makes every terminal decision in one place: whether
// stdout and stderr are terminals, whether to use colour (--color and
// NO_COLOR), and whether to show a spinner. Commands write through it and
// never look at the terminal themselves.
package iostreams

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/briandowns/spinner"
	"github.com/fatih/color"
	"github.com/mattn/go-isatty"
)

// Color modes of --color.
const (
	ColorAuto   = "auto"
	ColorAlways = "always"
	ColorNever  = "never"
)

// IOStreams are the process's standard streams and what they are attached to.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	stdoutTTY bool
	stderrTTY bool
	errFile   *os.File // for the spinner, which must know its terminal
	color     bool
	noColor   bool // NO_COLOR is set
	now       func() time.Time

	spin *spinner.Spinner
}

// System returns the process's streams.
func System() *IOStreams {
	s := &IOStreams{
		In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, errFile: os.Stderr,
		stdoutTTY: isTerminal(os.Stdout), stderrTTY: isTerminal(os.Stderr),
		noColor: os.Getenv("NO_COLOR") != "",
		now:     time.Now,
	}
	s.color = s.stdoutTTY && !s.noColor
	return s
}

// Test returns streams writing to the given writers, never a terminal.
func Test(in io.Reader, out, errOut io.Writer) *IOStreams {
	return &IOStreams{In: in, Out: out, ErrOut: errOut, now: time.Now}
}

func isTerminal(f *os.File) bool {
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// SetColorMode applies --color. NO_COLOR (https://no-color.org) turns colour
// off in auto mode; an explicit --color always wins, as the user asked.
func (s *IOStreams) SetColorMode(mode string) error {
	switch mode {
	case "", ColorAuto:
		s.color = s.stdoutTTY && !s.noColor
	case ColorAlways:
		s.color = true
	case ColorNever:
		s.color = false
	default:
		return fmt.Errorf("--color %q is not one of auto, always, never", mode)
	}
	return nil
}

// ColorEnabled reports whether output may carry colour escape codes.
func (s *IOStreams) ColorEnabled() bool { return s.color }

// IsStderrTTY reports whether progress goes to a person at a terminal
// (spinner) rather than to a log (timestamped lines).
func (s *IOStreams) IsStderrTTY() bool { return s.stderrTTY }

// Now is the clock used for timestamps.
func (s *IOStreams) Now() time.Time { return s.now() }

// ColorScheme colours text when colour is enabled, and returns it unchanged
// otherwise.
type ColorScheme struct{ enabled bool }

// ColorScheme returns the scheme for the current colour decision.
func (s *IOStreams) ColorScheme() ColorScheme { return ColorScheme{enabled: s.color} }

func (c ColorScheme) paint(attr []color.Attribute, text string) string {
	if !c.enabled {
		return text
	}
	col := color.New(attr...)
	col.EnableColor() // per object: fatih/color's own default looks at the terminal and NO_COLOR itself
	return col.Sprint(text)
}

func (c ColorScheme) Green(s string) string  { return c.paint([]color.Attribute{color.FgGreen}, s) }
func (c ColorScheme) Red(s string) string    { return c.paint([]color.Attribute{color.FgRed}, s) }
func (c ColorScheme) Yellow(s string) string { return c.paint([]color.Attribute{color.FgYellow}, s) }
func (c ColorScheme) Cyan(s string) string   { return c.paint([]color.Attribute{color.FgCyan}, s) }
func (c ColorScheme) Bold(s string) string   { return c.paint([]color.Attribute{color.Bold}, s) }
func (c ColorScheme) Faint(s string) string  { return c.paint([]color.Attribute{color.Faint}, s) }

// StartProgress shows a spinner on stderr when stderr is a terminal; in a
// log it does nothing, so that CI consoles carry no escape codes.
func (s *IOStreams) StartProgress(label string) {
	if !s.stderrTTY || s.errFile == nil {
		return
	}
	if s.spin == nil {
		s.spin = spinner.New(spinner.CharSets[11], 120*time.Millisecond,
			spinner.WithWriterFile(s.errFile), spinner.WithHiddenCursor(true))
		if s.color {
			_ = s.spin.Color("cyan")
		}
	}
	s.spin.Lock()
	s.spin.Suffix = " " + label
	s.spin.Unlock()
	s.spin.Start()
}

// UpdateProgress changes the spinner's label.
func (s *IOStreams) UpdateProgress(label string) {
	if s.spin == nil {
		return
	}
	s.spin.Lock()
	s.spin.Suffix = " " + label
	s.spin.Unlock()
}

// StopProgress removes the spinner.
func (s *IOStreams) StopProgress() {
	if s.spin != nil {
		s.spin.Stop()
	}
}

// Progressf prints a progress line on stderr: above the spinner on a
// terminal, and with a UTC timestamp in a log, so that a CI console reads
// as a timeline.
func (s *IOStreams) Progressf(format string, args ...any) {
	line := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	if !s.stderrTTY {
		fmt.Fprintf(s.ErrOut, "%s %s\n", s.now().UTC().Format("2006-01-02T15:04:05Z"), line)
		return
	}
	active := s.spin != nil && s.spin.Active()
	if active {
		s.spin.Stop()
	}
	fmt.Fprintln(s.ErrOut, line)
	if active {
		s.spin.Start()
	}
}

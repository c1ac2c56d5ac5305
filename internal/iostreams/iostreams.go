// Package iostreams makes every terminal decision in one place: whether
// stdout and stderr are terminals, whether to use colour (--color, NO_COLOR,
// CLICOLOR, CLICOLOR_FORCE and TERM=dumb; docs/commands.md says how they
// combine), and whether to show a spinner. Commands write through it and
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
// Colour is decided per stream: stdout to a terminal and stderr to a file
// colours the one and not the other.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	stdoutTTY bool
	stderrTTY bool
	errFile   *os.File // for the spinner, which must know its terminal
	colorMode string   // --color: auto, always or never
	env       colorEnv
	now       func() time.Time

	spin *spinner.Spinner
}

// colorEnv is what the environment says about colour and the terminal.
type colorEnv struct {
	noColor       bool // NO_COLOR is set (https://no-color.org)
	cliColorOff   bool // CLICOLOR=0
	cliColorForce bool // CLICOLOR_FORCE set and not 0
	dumb          bool // TERM=dumb: no colour, no cursor movement
}

// System returns the process's streams.
func System() *IOStreams {
	s := &IOStreams{
		In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, errFile: os.Stderr,
		stdoutTTY: isTerminal(os.Stdout), stderrTTY: isTerminal(os.Stderr),
		now: time.Now,
	}
	s.ReadEnv(os.Getenv)
	return s
}

// Test returns streams writing to the given writers, never a terminal.
func Test(in io.Reader, out, errOut io.Writer) *IOStreams {
	return &IOStreams{In: in, Out: out, ErrOut: errOut, now: time.Now}
}

// ReadEnv takes NO_COLOR, CLICOLOR, CLICOLOR_FORCE and TERM from getenv.
func (s *IOStreams) ReadEnv(getenv func(string) string) {
	force := getenv("CLICOLOR_FORCE")
	s.env = colorEnv{
		noColor:       getenv("NO_COLOR") != "",
		cliColorOff:   getenv("CLICOLOR") == "0",
		cliColorForce: force != "" && force != "0",
		dumb:          getenv("TERM") == "dumb",
	}
	s.syncSpinnerColor()
}

// SetStdoutTTY and SetStderrTTY say whether the streams are terminals, for
// tests and for callers that know better than isatty.
func (s *IOStreams) SetStdoutTTY(tty bool) { s.stdoutTTY = tty }

// SetStderrTTY: see SetStdoutTTY.
func (s *IOStreams) SetStderrTTY(tty bool) {
	s.stderrTTY = tty
	s.syncSpinnerColor()
}

// SetNow sets the clock used for timestamps.
func (s *IOStreams) SetNow(now func() time.Time) { s.now = now }

func isTerminal(f *os.File) bool {
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// SetColorMode applies --color. An explicit always or never wins over the
// environment, as the user asked.
func (s *IOStreams) SetColorMode(mode string) error {
	switch mode {
	case "", ColorAuto:
		s.colorMode = ColorAuto
	case ColorAlways, ColorNever:
		s.colorMode = mode
	default:
		return fmt.Errorf("--color %q is not one of auto, always, never", mode)
	}
	s.syncSpinnerColor()
	return nil
}

// colorFor decides colour for a stream that is (or is not) a terminal. In
// auto mode: NO_COLOR, CLICOLOR=0 and TERM=dumb turn it off and beat
// CLICOLOR_FORCE, which turns it on without a terminal (the precedence of
// GitHub CLI and of no-color.org).
func (s *IOStreams) colorFor(tty bool) bool {
	switch s.colorMode {
	case ColorAlways:
		return true
	case ColorNever:
		return false
	}
	if s.env.noColor || s.env.cliColorOff || s.env.dumb {
		return false
	}
	return tty || s.env.cliColorForce
}

// ColorEnabled reports whether stdout may carry colour escape codes.
func (s *IOStreams) ColorEnabled() bool { return s.colorFor(s.stdoutTTY) }

// ErrColorEnabled reports whether stderr may carry colour escape codes.
func (s *IOStreams) ErrColorEnabled() bool { return s.colorFor(s.stderrTTY) }

// spinnerAllowed: a spinner rewrites its line with cursor codes, which only
// a real, capable terminal on stderr shows as intended.
func (s *IOStreams) spinnerAllowed() bool {
	return s.stderrTTY && !s.env.dumb && s.errFile != nil
}

// syncSpinnerColor makes the spinner's frames plain when stderr has no
// colour: the spinner colours them through fatih/color's process-wide
// switch, which looks only at stdout and NO_COLOR. Our own ColorScheme
// enables colour per object, so the switch affects the spinner alone.
func (s *IOStreams) syncSpinnerColor() {
	color.NoColor = !s.ErrColorEnabled()
}

// IsStderrTTY reports whether progress goes to a person at a terminal
// (spinner) rather than to a log (timestamped lines).
func (s *IOStreams) IsStderrTTY() bool { return s.stderrTTY }

// Now is the clock used for timestamps.
func (s *IOStreams) Now() time.Time { return s.now() }

// ColorScheme colours text when colour is enabled, and returns it unchanged
// otherwise.
type ColorScheme struct{ enabled bool }

// ColorScheme returns the scheme for stdout.
func (s *IOStreams) ColorScheme() ColorScheme { return ColorScheme{enabled: s.ColorEnabled()} }

// ErrColorScheme returns the scheme for stderr (progress lines).
func (s *IOStreams) ErrColorScheme() ColorScheme { return ColorScheme{enabled: s.ErrColorEnabled()} }

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
	if !s.spinnerAllowed() {
		return
	}
	if s.spin == nil {
		s.spin = spinner.New(spinner.CharSets[11], 120*time.Millisecond,
			spinner.WithWriterFile(s.errFile), spinner.WithHiddenCursor(true))
		if s.ErrColorEnabled() {
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
	if !s.spinnerAllowed() {
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

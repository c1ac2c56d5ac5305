package main

import (
	"fmt"

	"github.com/serfdeploy/serfdeploy/internal/iostreams"
	"github.com/serfdeploy/serfdeploy/internal/render"
	"github.com/serfdeploy/serfdeploy/orchestrate"
)

// progress shows a watch as it goes: a spinner with counts on a terminal,
// one timestamped line per node state change in a log. Everything goes to
// stderr, so stdout holds only the summary or the JSON document.
type progress struct {
	io    *iostreams.IOStreams
	label string
}

func newProgress(streams *iostreams.IOStreams) *progress {
	return &progress{io: streams}
}

func (p *progress) observer() orchestrate.Observer {
	cs := p.io.ErrColorScheme() // progress goes to stderr
	return orchestrate.Observer{
		OnEvent: func(e orchestrate.Event) { p.io.Progressf("%s", render.Event(cs, e)) },
		OnProgress: func(pr orchestrate.Progress) {
			p.io.UpdateProgress(fmt.Sprintf("%s: %d/%d done, %d running, %d waiting", p.label, pr.Done, pr.Total, pr.Running, pr.Waiting))
		},
		OnNote: p.note,
	}
}

func (p *progress) note(s string) { p.io.Progressf("%s", s) }

func (p *progress) start(label string) {
	p.label = label
	p.io.StartProgress(label)
}

func (p *progress) stop() { p.io.StopProgress() }

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/serfdeploy/serfdeploy/internal/atomicfile"
	"github.com/serfdeploy/serfdeploy/internal/render"
	"github.com/serfdeploy/serfdeploy/orchestrate"
)

// report is one report file asked for on the command line.
type report struct {
	flag  string
	path  string
	write func(io.Writer, *orchestrate.Result) error
}

// checkReports lists the report files asked for and makes sure each can
// be written, before anything is sent: finding out at the end would lose
// the report of a release that ran.
func checkReports(c *cli.Context) ([]report, error) {
	all := []report{
		{"junit", "", render.JUnit},
		{"summary-file", "", render.Markdown},
		{"result-file", "", func(w io.Writer, res *orchestrate.Result) error { return render.JSON(w, res) }},
		{"html-report", "", render.HTML},
	}
	var out []report
	for _, r := range all {
		if r.path = c.String(r.flag); r.path != "" {
			out = append(out, r)
		}
	}
	for i, r := range out {
		if err := writable(r.path); err != nil {
			// Still write the reports that can be, saying why.
			return append(out[:i:i], out[i+1:]...), usageErrorf("--%s %s cannot be written (%v); choose a writable path", r.flag, r.path, err)
		}
	}
	return out, nil
}

// writable creates path's directory and a file beside path, then removes
// the file.
func writable(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(tmp)
}

// writeResult prints the result (summary or JSON) and writes the reports.
func (e *cliEnv) writeResult(c *cli.Context, res *orchestrate.Result, reports []report) error {
	var err error
	if jsonOutput(c) {
		err = render.JSON(e.io.Out, res)
	} else {
		err = render.Summary(e.io.Out, res, e.io.ColorScheme())
	}
	if err != nil {
		return fmt.Errorf("writing the result: %w", err)
	}
	return writeReports(res, reports)
}

// writeReports writes every report; it goes on past one that fails.
func writeReports(res *orchestrate.Result, reports []report) error {
	var errs []error
	for _, r := range reports {
		if err := writeFile(r.path, func(w io.Writer) error { return r.write(w, res) }); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", r.flag, err))
		}
	}
	return errors.Join(errs...)
}

// writeFile writes a report whole (internal/atomicfile), so that Jenkins
// never archives half of one.
func writeFile(path string, write func(io.Writer) error) error {
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		return err
	}
	return atomicfile.Write(path, buf.Bytes(), 0o644)
}

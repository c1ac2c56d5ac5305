package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/serfdeploy/serfdeploy/internal/render"
	"github.com/serfdeploy/serfdeploy/orchestrate"
)

// writeResult prints the result (summary or JSON) and writes the report
// files that were asked for.
func (e *cliEnv) writeResult(c *cli.Context, res *orchestrate.Result) error {
	var err error
	if jsonOutput(c) {
		err = render.JSON(e.io.Out, res)
	} else {
		err = render.Summary(e.io.Out, res, e.io.ColorScheme())
	}
	if err != nil {
		return fmt.Errorf("writing the result: %w", err)
	}
	files := []struct {
		flag  string
		write func(io.Writer) error
	}{
		{"junit", func(w io.Writer) error { return render.JUnit(w, res) }},
		{"summary-file", func(w io.Writer) error { return render.Markdown(w, res) }},
		{"result-file", func(w io.Writer) error { return render.JSON(w, res) }},
	}
	for _, f := range files {
		path := c.String(f.flag)
		if path == "" {
			continue
		}
		if err := writeFile(path, f.write); err != nil {
			return fmt.Errorf("--%s: %w", f.flag, err)
		}
	}
	return nil
}

// writeFile writes through a temporary file and a rename, so that Jenkins
// never archives half a report.
func writeFile(path string, write func(io.Writer) error) error {
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Package junitcheck reads a JUnit XML report as a strict consumer does,
// for tests: well-formed to Go's strict decoder and to libxml2's xmllint
// (what Jenkins' parser is closest to), then the elements Jenkins' JUnit
// plugin reads.
package junitcheck

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
)

// Doc is what Jenkins' JUnit plugin reads: testsuites > testsuite
// (name, tests, failures, errors, time) > testcase (name, classname, time)
// with an optional failure or error element carrying a message attribute.
type Doc struct {
	XMLName xml.Name `xml:"testsuites"`
	Suites  []struct {
		Name     string `xml:"name,attr"`
		Tests    int    `xml:"tests,attr"`
		Failures int    `xml:"failures,attr"`
		Errors   int    `xml:"errors,attr"`
		Time     string `xml:"time,attr"`
		Props    []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:"value,attr"`
		} `xml:"properties>property"`
		SystemOut string `xml:"system-out"`
		Cases     []struct {
			Name      string `xml:"name,attr"`
			Classname string `xml:"classname,attr"`
			Time      string `xml:"time,attr"`
			Failure   *struct {
				Message string `xml:"message,attr"`
				Type    string `xml:"type,attr"`
				Body    string `xml:",chardata"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
				Type    string `xml:"type,attr"`
				Body    string `xml:",chardata"`
			} `xml:"error"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
			SystemOut *string `xml:"system-out"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// Parse checks b and decodes its one test suite.
func Parse(b []byte) (*Doc, error) {
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	for {
		_, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not well-formed XML: %w", err)
		}
	}
	if err := xmllint(b); err != nil {
		return nil, err
	}
	var doc Doc
	if err := xml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if len(doc.Suites) != 1 {
		return nil, fmt.Errorf("%d test suites, want 1", len(doc.Suites))
	}
	return &doc, nil
}

func xmllint(b []byte) error {
	path, err := exec.LookPath("xmllint")
	if err != nil {
		return errors.New("xmllint is not on PATH: install Debian's libxml2-utils (scripts/test.sh does)")
	}
	f, err := os.CreateTemp("", "junit-*.xml")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if out, err := exec.Command(path, "--noout", f.Name()).CombinedOutput(); err != nil {
		return fmt.Errorf("xmllint refuses the report: %v\n%s", err, out)
	}
	return nil
}

package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

// bin is the serfdeploy binary the tests run as a user does; built once
// by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "serfdeploy-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, err = deployrig.BuildBinary(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	puppetServer.shutdown()
	os.RemoveAll(dir)
	os.Exit(code)
}

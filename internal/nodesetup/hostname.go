package nodesetup

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// hostName is the node's name on a first install: its fully qualified
// name (`hostname -f`) when there is one, as serf's own default would not
// be, else the short one.
func hostName() (string, error) {
	name := ""
	if out, err := exec.Command("hostname", "-f").Output(); err == nil {
		name = strings.TrimSpace(string(out))
	}
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("the host name: %w (give --node-name)", err)
		}
		name = h
	}
	if err := protocol.ValidNode(name); err != nil {
		return "", fmt.Errorf("the host name: %w (give --node-name)", err)
	}
	return name, nil
}

// Package nodesetup is `serfdeploy install`: it writes a node's serf
// config (/etc/serf/serf.json, the keyring), serfdeploy's node config
// (/etc/serfdeploy/node.yaml) and the systemd drop-in for Debian's serf
// unit, with real encoders and fixed file modes, and converges on re-runs:
// a setting given replaces what the files say, a setting not given is
// kept, and every change is reported (a secret only as "(changed)").
package nodesetup

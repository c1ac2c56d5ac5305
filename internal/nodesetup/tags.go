package nodesetup

import (
	"fmt"
	"regexp"
	"unicode"
	"unicode/utf8"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// roleTag is the tag the CLI finds masters by (its --master-tag default,
// role=puppetmaster); --role sets it, so --tag may not.
const (
	roleTagKey    = protocol.MasterTagKey
	roleTagMaster = protocol.MasterTagValue
)

// A tag key is what serf's `-tag key=value` and serfdeploy's `--tag
// key=regexp` can both name: no '=', no space or comma (serf's member
// events list tags as k=v,k=v on one line).
var tagKey = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,63}$`)

// ValidTag checks one tag. A value may hold any printable text, quotes
// and backslashes included (serf.json is encoded, never pasted), but no
// control character: serf hands tags to handlers one member per line.
func ValidTag(key, value string) error {
	if !tagKey.MatchString(key) {
		return fmt.Errorf("tag key %q is not valid: 1 to 64 of A-Z a-z 0-9 _ . : / - (starting with a letter, digit or _)", key)
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("tag %s: the value is not valid UTF-8", key)
	}
	for _, r := range value {
		if unicode.IsControl(r) {
			return fmt.Errorf("tag %s: the value holds a control character (newline, tab...); serf passes tags to handlers one member per line", key)
		}
	}
	return nil
}

// tagsFit reports whether serf accepts these tags at start, sized as serf
// encodes them.
func tagsFit(tags map[string]string) error {
	if size := protocol.TagsSize(tags); size > protocol.MaxTagsSize {
		return fmt.Errorf("the tags take %d bytes as serf encodes them, over serf's limit of %d: serf would not start", size, protocol.MaxTagsSize)
	}
	return nil
}

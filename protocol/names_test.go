package protocol

import (
	"strings"
	"testing"
)

// TestNameLengths: the length limits, checked apart from the patterns.
func TestNameLengths(t *testing.T) {
	for _, c := range []struct {
		check func(string) error
		max   int
		first string
	}{
		{ValidModule, 64, "m"},
		{ValidEnvironment, 64, "e"},
		{ValidRef, 128, "r"},
		{ValidID, 128, "i"},
		{ValidNode, 253, "n"},
	} {
		if err := c.check(c.first + strings.Repeat("a", c.max-1)); err != nil {
			t.Errorf("%d characters refused: %v", c.max, err)
		}
		if err := c.check(c.first + strings.Repeat("a", c.max)); err == nil {
			t.Errorf("%d characters taken, the limit is %d", c.max+1, c.max)
		}
	}
	if ValidEnvironment("") == nil || ValidModule("") == nil || ValidID("") == nil {
		t.Error("an empty name was taken")
	}
}

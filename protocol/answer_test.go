package protocol

import "testing"

// TestDecodeAnswerFrom: the one check of an answer refuses what every
// reader used to refuse by hand (and checkID's copy forgot the node).
func TestDecodeAnswerFrom(t *testing.T) {
	for _, c := range []struct {
		payload, from string
		ok            bool
	}{
		{`{"v":1,"node":"a","phase":"finished"}`, "a", true},
		{`{"v":1,"node":"a","phase":"finished","newer_field":1}`, "a", true},
		{`{"v":1,"node":"b","phase":"finished"}`, "a", false}, // speaks for another node
		{`{"node":"a","phase":"finished"}`, "a", false},       // no version
		{`{"v":1,"NODE":"a","phase":"finished"}`, "a", false}, // a key in another case
		{`garbage`, "a", false},
	} {
		var st Status
		if err := DecodeAnswerFrom([]byte(c.payload), c.from, &st); (err == nil) != c.ok {
			t.Errorf("%s from %s: %v", c.payload, c.from, err)
		}
	}
	var a RunAnswer
	if err := DecodeAnswerFrom([]byte(`{"v":1,"node":"x","result":"started"}`), "y", &a); err == nil {
		t.Error("a run answer naming another node was taken")
	}
}

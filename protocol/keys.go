package protocol

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// encoding/json matches object keys to struct fields case-insensitively
// (with Unicode folding: "ID", "Id" and "ſkip_masters" all land in a
// field), so a payload can be spelt in ways no serfdeploy sender writes,
// and two senders' spellings of one field can disagree. checkKeys walks the
// JSON by the Go type it was decoded into and refuses any key that is not
// exactly a field's json name. encoding/json/v2 matches case-sensitively,
// but only behind GOEXPERIMENT=jsonv2 in Go 1.26, which every build of
// serfdeploy would then have to set.
//
// unknown says what to do with a key that names no field even when folded:
// refuse it (payloads, which DecodeStrict also refuses) or ignore it
// (answers from a newer node may carry new fields).
func checkKeys(b []byte, t reflect.Type, refuseUnknown bool) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if len(b) == 0 || string(b) == "null" || t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil // null, or a type that decodes itself (time.Time)
	}
	switch t.Kind() {
	case reflect.Struct:
		var obj map[string]json.RawMessage
		if json.Unmarshal(b, &obj) != nil {
			return nil // not an object: the decoder itself has refused it
		}
		fields := jsonFields(t)
		for key, val := range obj {
			ft, ok := fields[key]
			if !ok {
				if refuseUnknown || foldsToField(key, fields) {
					return fmt.Errorf("field %q is not one of %s's (keys are case-sensitive)", OneLine(key, 64), t.Name())
				}
				continue
			}
			if err := checkKeys(val, ft, refuseUnknown); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		var items []json.RawMessage
		if json.Unmarshal(b, &items) != nil {
			return nil
		}
		for _, it := range items {
			if err := checkKeys(it, t.Elem(), refuseUnknown); err != nil {
				return err
			}
		}
	case reflect.Map:
		var obj map[string]json.RawMessage
		if json.Unmarshal(b, &obj) != nil {
			return nil
		}
		for _, val := range obj { // the map's own keys are data, not field names
			if err := checkKeys(val, t.Elem(), refuseUnknown); err != nil {
				return err
			}
		}
	}
	return nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// jsonFields maps the json names of a struct's fields to their types, with
// the fields of embedded structs (PuppetFlags) promoted as encoding/json
// promotes them.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				for k, v := range jsonFields(et) {
					if _, shadowed := out[k]; !shadowed {
						out[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func foldsToField(key string, fields map[string]reflect.Type) bool {
	for name := range fields {
		if strings.EqualFold(key, name) {
			return true
		}
	}
	return false
}

// DecodeAnswer decodes a node's answer to a query (Status, RunAnswer,
// LockAnswer) as the CLI should: unknown fields are ignored, so that a
// newer node's answer still reads, but a key that is a field's name in
// another case is refused, as DecodeStrict refuses it.
func DecodeAnswer(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("not a valid answer: %w", err)
	}
	if err := checkKeys(b, reflect.TypeOf(v), false); err != nil {
		return fmt.Errorf("not a valid answer: %w", err)
	}
	return nil
}

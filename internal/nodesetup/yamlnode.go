package nodesetup

import (
	"bytes"
	"fmt"

	yaml "go.yaml.in/yaml/v3"
)

// yamlDoc is node.yaml as yaml.v3's node tree, so that a re-run keeps
// the operator's comments and every setting it does not manage. Values
// are set through yaml.Node.Encode: the encoder quotes what needs it.
type yamlDoc struct {
	doc *yaml.Node // a DocumentNode holding one MappingNode
}

func parseYAML(path string, b []byte) (*yamlDoc, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s is not valid YAML (%w); nothing was changed: fix it or move it aside and run install again", path, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		// An empty file (or one of comments only): start a mapping.
		head := doc.HeadComment
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
		doc.Content[0].HeadComment = head
	}
	if doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: the top level is not a mapping of settings; nothing was changed", path)
	}
	return &yamlDoc{doc: &doc}, nil
}

// lookup returns the node at a key path, or nil.
func (d *yamlDoc) lookup(keys ...string) *yaml.Node {
	n := d.doc.Content[0]
	for _, k := range keys {
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// get decodes the value at a key path into v; a missing one leaves v.
func (d *yamlDoc) get(v any, keys ...string) error {
	n := d.lookup(keys...)
	if n == nil {
		return nil
	}
	if err := n.Decode(v); err != nil {
		return fmt.Errorf("node.yaml %v: %w", keys, err)
	}
	return nil
}

// set encodes v at a key path, creating the mappings on the way.
func (d *yamlDoc) set(v any, keys ...string) error {
	var val yaml.Node
	if err := val.Encode(v); err != nil {
		return fmt.Errorf("encoding node.yaml %v: %w", keys, err)
	}
	n := d.doc.Content[0]
	for i, k := range keys {
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("node.yaml: %v is not a mapping", keys[:i])
		}
		var next *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == k {
				next = n.Content[j+1]
			}
		}
		last := i == len(keys)-1
		if next == nil {
			next = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			if last {
				next = &val
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, next)
		} else if !last && next.Kind == yaml.ScalarNode && next.Tag == "!!null" {
			// "master:" with nothing under it.
			*next = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		} else if last {
			// Keep the comments around the old value.
			val.HeadComment, val.LineComment, val.FootComment = next.HeadComment, next.LineComment, next.FootComment
			*next = val
		}
		n = next
	}
	return nil
}

func (d *yamlDoc) encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(d.doc); err != nil {
		return nil, fmt.Errorf("encoding node.yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding node.yaml: %w", err)
	}
	return buf.Bytes(), nil
}

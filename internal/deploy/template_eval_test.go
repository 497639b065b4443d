package deploy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/awslabs/goformation/v7/intrinsics"
	"gopkg.in/yaml.v3"
)

// The template evaluator: conditions (Fn::Equals, Fn::And, Fn::Or, Fn::Not,
// Condition) and the intrinsic handlers through which goformation reads the
// template under one world's parameter values.

// evalConditions evaluates the template's Conditions section for the given
// parameter values: Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition and Ref.
func evalConditions(t testing.TB, raw map[string]any, params map[string]string) map[string]bool {
	t.Helper()
	defs, _ := raw["Conditions"].(map[string]any)
	out := map[string]bool{}
	var cond func(name string, depth int) bool
	var value func(v any) string
	var eval func(v any, depth int) bool
	value = func(v any) string {
		if m, ok := v.(map[string]any); ok {
			if ref, ok := m["Ref"].(string); ok && len(m) == 1 {
				p, ok := params[ref]
				if !ok {
					t.Fatalf("condition refers to %s, not a parameter", ref)
				}
				return p
			}
			t.Fatalf("condition operand %v: only literals and Ref to parameters are evaluated", v)
		}
		return scalar(v)
	}
	eval = func(v any, depth int) bool {
		m, ok := v.(map[string]any)
		if !ok || len(m) != 1 {
			t.Fatalf("condition expression %#v is not one intrinsic (the short tag !Condition is not understood by goformation; write {Condition: Name})", v)
		}
		for fn, arg := range m {
			args, _ := arg.([]any)
			switch fn {
			case "Fn::Equals":
				if len(args) != 2 {
					t.Fatalf("Fn::Equals needs 2 operands: %v", arg)
				}
				return value(args[0]) == value(args[1])
			case "Fn::Not":
				if len(args) != 1 {
					t.Fatalf("Fn::Not needs 1 operand: %v", arg)
				}
				return !eval(args[0], depth+1)
			case "Fn::And", "Fn::Or":
				if len(args) < 2 || len(args) > 10 {
					t.Fatalf("%s needs 2 to 10 operands: %v", fn, arg)
				}
				and := fn == "Fn::And"
				for _, a := range args {
					if eval(a, depth+1) != and {
						return !and
					}
				}
				return and
			case "Condition":
				name, _ := arg.(string)
				return cond(name, depth+1)
			}
			t.Fatalf("unsupported condition function %s", fn)
		}
		return false
	}
	cond = func(name string, depth int) bool {
		if depth > 20 {
			t.Fatalf("condition %s: cycle", name)
		}
		if v, ok := out[name]; ok {
			return v
		}
		def, ok := defs[name]
		if !ok {
			t.Fatalf("unknown condition %s", name)
		}
		v := eval(def, depth)
		out[name] = v
		return v
	}
	for name := range defs {
		cond(name, 0)
	}
	return out
}

// stripUntyped removes untypedProperties from the YAML, keeping every tag.
func stripUntyped(t testing.TB, data []byte) []byte {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	child := func(n *yaml.Node, key string) (*yaml.Node, int) {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil, -1
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1], i
			}
		}
		return nil, -1
	}
	for _, u := range untypedProperties {
		res, _ := child(root.Content[0], "Resources")
		res, _ = child(res, u.resource)
		props, _ := child(res, "Properties")
		_, i := child(props, u.property)
		if i < 0 {
			t.Fatalf("%s has no %s: update untypedProperties (stripped because it is %s)", u.resource, u.property, u.why)
		}
		props.Content = slices.Delete(props.Content, i, i+2)
	}
	out, err := yaml.Marshal(&root)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var subVariable = regexp.MustCompile(`\$\{([^}]+)\}`)

// handlers are the intrinsic overrides of the typed parse. Problems they
// meet (an Fn::If on an unknown condition) are appended to problems.
func handlers(conds map[string]bool, problems *[]string) map[string]intrinsics.IntrinsicHandler {
	ref := func(name string, input any, tmpl any) any {
		s, _ := input.(string)
		switch s {
		case "AWS::NoValue":
			return nil
		case "AWS::Partition":
			return "aws"
		case "AWS::URLSuffix":
			return "amazonaws.com"
		}
		if v := intrinsics.Ref(name, input, tmpl); v != nil {
			return v
		}
		return refPlaceholder(s)
	}
	getAtt := func(name string, input any, tmpl any) any {
		switch v := input.(type) {
		case string:
			return getAttPlaceholder(v)
		case []any:
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = scalar(p)
			}
			return getAttPlaceholder(strings.Join(parts, "."))
		}
		*problems = append(*problems, fmt.Sprintf("malformed Fn::GetAtt %v", input))
		return nil
	}
	sub := func(name string, input any, tmpl any) any {
		var s string
		vars := map[string]any{}
		switch v := input.(type) {
		case string:
			s = v
		case []any:
			if len(v) != 2 {
				*problems = append(*problems, fmt.Sprintf("malformed Fn::Sub %v", input))
				return nil
			}
			s, _ = v[0].(string)
			vars, _ = v[1].(map[string]any)
		}
		return subVariable.ReplaceAllStringFunc(s, func(m string) string {
			v := m[2 : len(m)-1]
			if lit, ok := strings.CutPrefix(v, "!"); ok {
				return "${" + lit + "}"
			}
			if x, ok := vars[v]; ok {
				return scalar(x)
			}
			if strings.Contains(v, ".") {
				return getAttPlaceholder(v)
			}
			return scalar(ref("Ref", v, tmpl))
		})
	}
	fnIf := func(name string, input any, tmpl any) any {
		args, _ := input.([]any)
		if len(args) != 3 {
			*problems = append(*problems, fmt.Sprintf("malformed Fn::If %v", input))
			return nil
		}
		c, _ := args[0].(string)
		v, ok := conds[c]
		if !ok {
			*problems = append(*problems, fmt.Sprintf("Fn::If on unknown condition %q", c))
			return nil
		}
		if v {
			return args[1]
		}
		return args[2]
	}
	return map[string]intrinsics.IntrinsicHandler{
		"Ref":        ref,
		"Fn::GetAtt": getAtt,
		"Fn::Sub":    sub,
		"Fn::If":     fnIf,
	}
}

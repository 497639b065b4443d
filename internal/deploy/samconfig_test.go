package deploy

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

const samconfigFile = "../../samconfig.toml"

// overridePair is one Key="value" (or Key=value) of a SAM parameter_overrides
// string, the form `sam deploy --guided` writes.
var overridePair = regexp.MustCompile(`^\s*([A-Za-z0-9]+)=(?:"((?:[^"\\]|\\.)*)"|([^\s"]+))`)

func parseOverrides(t *testing.T, s string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for strings.TrimSpace(s) != "" {
		m := overridePair.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("parameter_overrides: cannot parse %q", s)
		}
		v := m[3]
		if m[3] == "" {
			v = strings.ReplaceAll(m[2], `\"`, `"`)
		}
		if _, dup := out[m[1]]; dup {
			t.Errorf("parameter_overrides sets %s twice", m[1])
		}
		out[m[1]] = v
		s = s[len(m[0]):]
	}
	return out
}

func TestSamconfig(t *testing.T) {
	var cfg map[string]any
	if _, err := toml.Decode(string(readFile(t, samconfigFile)), &cfg); err != nil {
		t.Fatalf("samconfig.toml: %v", err)
	}
	if v, _ := cfg["version"].(float64); v != 0.1 {
		t.Errorf("version = %v, want 0.1", cfg["version"])
	}
	params := section(t, rawTemplate(t), "Parameters")

	stacks := map[string]string{}
	for _, env := range []string{"default", "prod"} {
		t.Run(env, func(t *testing.T) {
			if _, ok := cfg[env].(map[string]any); !ok {
				t.Fatalf("no [%s] environment", env)
			}
			deploy, ok := at(cfg, env, "deploy", "parameters").(map[string]any)
			if !ok {
				t.Fatalf("no [%s.deploy.parameters]", env)
			}
			if _, ok := at(cfg, env, "build", "parameters").(map[string]any); !ok {
				t.Errorf("no [%s.build.parameters]", env)
			}
			stack, _ := at(cfg, env, "global", "parameters", "stack_name").(string)
			if s, ok := deploy["stack_name"].(string); ok {
				stack = s
			}
			if stack == "" {
				t.Error("no stack_name")
			}
			stacks[env] = stack
			if deploy["resolve_s3"] != true {
				t.Errorf("resolve_s3 = %v, want true", deploy["resolve_s3"])
			}
			if caps := strings.Fields(scalar(deploy["capabilities"])); !slices.Contains(caps, "CAPABILITY_IAM") {
				t.Errorf("capabilities = %v, want CAPABILITY_IAM (SAM creates the function's role)", deploy["capabilities"])
			}
			if _, ok := deploy["confirm_changeset"].(bool); !ok {
				t.Errorf("confirm_changeset = %v, want a boolean", deploy["confirm_changeset"])
			}
			if r, _ := deploy["region"].(string); r == "" {
				t.Error("no region")
			}
			po, _ := deploy["parameter_overrides"].(string)
			for name, v := range parseOverrides(t, po) {
				p, ok := params[name].(map[string]any)
				if !ok {
					t.Errorf("parameter_overrides: %s is not a template parameter", name)
					continue
				}
				if err := checkParameterValue(p, v); err != nil {
					t.Errorf("parameter_overrides: %s=%q: %v", name, v, err)
				}
			}
		})
	}
	if stacks["default"] == stacks["prod"] {
		t.Errorf("default and prod deploy to the same stack %q", stacks["prod"])
	}
	if at(cfg, "prod", "deploy", "parameters", "confirm_changeset") != true {
		t.Error("prod deploys without confirming the change set")
	}
}

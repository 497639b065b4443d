package deploy

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestMakefileBuildsEveryFunction guards against a build setting that
// silently does nothing: every function the template builds with
// BuildMethod: makefile has its build-<LogicalId> target, and that target
// builds the Lambda binary the way `make build` does (linux/arm64, no cgo,
// lambda.norpc, trimmed paths) into $(ARTIFACTS_DIR)/bootstrap.
func TestMakefileBuildsEveryFunction(t *testing.T) {
	raw, err := os.ReadFile("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		Resources map[string]struct {
			Type     string `yaml:"Type"`
			Metadata struct {
				BuildMethod string `yaml:"BuildMethod"`
			} `yaml:"Metadata"`
		} `yaml:"Resources"`
	}
	if err := yaml.Unmarshal(raw, &tmpl); err != nil {
		t.Fatal(err)
	}
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	makefile := string(mk)
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Z_]+) :?= (.*)$`).FindAllStringSubmatch(makefile, -1) {
		vars[m[1]] = m[2]
	}
	for _, m := range regexp.MustCompile(`(?m)^(LAMBDA_ARCH) \?= (.*)$`).FindAllStringSubmatch(makefile, -1) {
		vars[m[1]] = m[2] // the default, which sam build does not change
	}
	expand := func(s string) string {
		for k, v := range vars {
			s = strings.ReplaceAll(s, "$("+k+")", v)
		}
		return s
	}
	built := 0
	for id, r := range tmpl.Resources {
		if r.Type != "AWS::Serverless::Function" || r.Metadata.BuildMethod != "makefile" {
			continue
		}
		built++
		m := regexp.MustCompile(`(?m)^build-` + id + `:\s*\n((?:\t.*\n)+)`).FindStringSubmatch(makefile)
		if m == nil {
			t.Fatalf("template builds %s with its Makefile, but the Makefile has no build-%s target", id, id)
		}
		recipe := expand(m[1])
		for _, want := range []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64", "-tags lambda.norpc", "-trimpath", "-o $(ARTIFACTS_DIR)/bootstrap", "./functions/verification"} {
			if !strings.Contains(recipe, want) {
				t.Errorf("build-%s does not build with %q:\n%s", id, want, recipe)
			}
		}
	}
	if built == 0 {
		t.Fatal("no function is built with BuildMethod: makefile")
	}
}

package api_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/verifykit/verifykit/api"
)

var update = flag.Bool("update", false, "rewrite openapi.json from openapi.yaml")

// TestJSONIsTheYAML holds openapi.json to openapi.yaml: the served document
// cannot drift from the one people edit and lint.
func TestJSONIsTheYAML(t *testing.T) {
	var doc any
	if err := yaml.Unmarshal(api.YAML, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	want, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("openapi.yaml has a value JSON cannot hold: %v", err)
	}
	want = append(want, '\n')
	if *update {
		if err := os.WriteFile("openapi.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(api.JSON, want) {
		t.Fatal("openapi.json is not openapi.yaml: run `make openapi` (go test ./api -update)")
	}
}

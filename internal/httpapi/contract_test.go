package httpapi

import (
	"net/http"
	"slices"
	"testing"

	"github.com/verifykit/verifykit/internal/openapitest"
	"github.com/verifykit/verifykit/internal/verification"
)

// TestContractHasEveryRouteAndError holds api/openapi.yaml to the router and
// to the error catalogue: every route with its method is documented, every
// documented path is routed, and every error name, code and status is in it.
func TestContractHasEveryRouteAndError(t *testing.T) {
	c, err := openapitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	doc := c.Doc()
	for path, rt := range routes {
		item := doc.Paths.Find(path)
		if item == nil || item.GetOperation(rt.method) == nil {
			t.Errorf("%s %s is not in api/openapi.yaml", rt.method, path)
		}
	}
	for path, item := range doc.Paths.Map() {
		rt, ok := routes[path]
		if !ok {
			t.Errorf("api/openapi.yaml documents %s, which is not routed", path)
			continue
		}
		for method := range item.Operations() {
			if method != rt.method && method != http.MethodOptions {
				t.Errorf("api/openapi.yaml documents %s %s; the route takes %s", method, path, rt.method)
			}
		}
	}

	errSchema := doc.Components.Schemas["Error"].Value
	names := doc.Components.Schemas["ErrorName"].Value.Enum
	codes := errSchema.Properties["error_code"].Value.Enum
	for _, k := range verification.Kinds() {
		if !slices.Contains(names, any(string(k))) {
			t.Errorf("error %s is not in ErrorName", k)
		}
		if !slices.Contains(codes, any(float64(k.Code()))) {
			t.Errorf("error_code %d of %s is not in Error.error_code", k.Code(), k)
		}
		if _, ok := statuses[k]; !ok {
			t.Errorf("error %s has no status", k)
		}
	}
}

package httpapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/verifykit/verifykit/api"
	"github.com/verifykit/verifykit/internal/apptest"
	"github.com/verifykit/verifykit/internal/httpapi"
)

func TestOpenAPIServedAsJSON(t *testing.T) {
	h, _ := fakeHandler(t, nil, nil) // no outbox and no pages, as in Lambda
	resp := h.Serve(context.Background(), &httpapi.Request{Method: "GET", Path: "/auth/v1/openapi.json", Header: map[string]string{}, SourceIP: "203.0.113.9"})
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if resp.Status != 200 || !strings.HasPrefix(resp.Header["Content-Type"], "application/json") {
		t.Fatalf("%d %v", resp.Status, resp.Header)
	}
	if err := json.Unmarshal(resp.Body, &doc); err != nil || doc.OpenAPI != "3.1.0" || doc.Paths["/auth/v1/verification"] == nil {
		t.Fatalf("served document: %v, openapi %q", err, doc.OpenAPI)
	}

	// In Lambda too: through the catch-all resource, under a stage.
	ev, _ := json.Marshal(events.APIGatewayProxyRequest{
		Resource: "/{proxy+}", Path: "/auth/v1/openapi.json", HTTPMethod: "GET",
		RequestContext: events.APIGatewayProxyRequestContext{Stage: "prod", Identity: events.APIGatewayRequestIdentity{SourceIP: "198.51.100.7"}},
	})
	out, err := h.HandleLambda(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if r := out.(events.APIGatewayProxyResponse); r.StatusCode != 200 || r.Body != string(api.JSON) {
		t.Fatalf("Lambda: %d %.80s", r.StatusCode, r.Body)
	}
}

func TestDemoPageLocalOnly(t *testing.T) {
	s := apptest.New(t, nil)
	for path, want := range map[string]string{
		"/":             `autocomplete="one-time-code"`,
		"/demo.js":      "createClient",
		"/verifykit.js": "export function createClient",
	} {
		status, hdr, _ := s.Do(t, "GET", path, "203.0.113.9", "", nil)
		resp := s.Handler.Serve(context.Background(), &httpapi.Request{Method: "GET", Path: path, Header: map[string]string{}, SourceIP: "203.0.113.9"})
		if status != 200 || !strings.Contains(string(resp.Body), want) {
			t.Fatalf("local %s: %d, body without %q", path, status, want)
		}
		if !strings.Contains(hdr["Content-Security-Policy"], "script-src 'self'") || hdr["Cache-Control"] != "no-store" {
			t.Fatalf("local %s: headers %v", path, hdr)
		}
	}
	lambda, _ := fakeHandler(t, nil, nil) // no pages, as in Lambda
	for _, path := range []string{"/", "/demo.js", "/verifykit.js"} {
		if status, hdr, body := call(t, lambda, "GET", path, "203.0.113.9", "", nil, nil); status != 404 {
			t.Fatalf("without pages %s: %d, want 404", path, status)
		} else {
			checkEnvelope(t, status, hdr, body, "not_found")
		}
	}
}

package app_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/verifykit/verifykit/internal/apptest"
)

// TestSampleEvents invokes the Lambda handler with every events/*.json, each
// against a fresh local service, and checks the answer, and both against
// api/openapi.yaml.
func TestSampleEvents(t *testing.T) {
	for _, e := range apptest.Expectations(t, "../../events") {
		t.Run(e.File, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("../../events", e.File))
			if err != nil {
				t.Fatal(err)
			}
			s := apptest.New(t, map[string]string{"DEV_USERS": "existing@example.com"})
			out, err := s.Handler.HandleLambda(context.Background(), raw)
			if err != nil {
				t.Fatalf("handler error: %v", err)
			}
			var status int
			var body string
			switch r := out.(type) {
			case events.APIGatewayProxyResponse:
				if !strings.HasPrefix(e.File, "rest-") {
					t.Fatalf("%s answered in the v1 shape", e.File)
				}
				status, body = r.StatusCode, r.Body
			case events.APIGatewayV2HTTPResponse:
				if !strings.HasPrefix(e.File, "http-") {
					t.Fatalf("%s answered in the v2 shape", e.File)
				}
				status, body = r.StatusCode, r.Body
			default:
				t.Fatalf("answer of type %T", out)
			}
			apptest.CheckAnswer(t, e, status, []byte(body))
			apptest.CheckEventContract(t, raw, out)
		})
	}
}

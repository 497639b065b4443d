package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/verifykit/verifykit/internal/app"
	"github.com/verifykit/verifykit/internal/apptest"
)

// TestRefusedSendsLogNoSDKWarning: on DynamoDB Local a refused send (a
// failed condition in the transaction) used to make the SDK warn "failed to
// close HTTP response body" on every request. The service's log, which the
// SDK's own lines go through, must hold one line per request and no warning.
func TestRefusedSendsLogNoSDKWarning(t *testing.T) {
	s := apptest.NewDynamo(t, nil, nil, app.Options{})
	body := `{"target":"ANY","email":"quiet@example.com"}`
	if status, _, m := s.Do(t, "POST", sendRoute, "192.0.2.10", body, nil); status != http.StatusOK {
		t.Fatalf("first send: %d %v", status, m)
	}
	for range 3 {
		if status, _, m := s.Do(t, "POST", sendRoute, "192.0.2.10", body, nil); status != http.StatusTooManyRequests {
			t.Fatalf("send in cooldown: %d %v, want 429", status, m)
		}
	}
	log := s.Stdout.String()
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if strings.Contains(line, `"source":"aws-sdk"`) || strings.Contains(line, "failed to close") {
			t.Errorf("SDK line in the log of normal operation: %s", line)
		}
	}
}

package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/app"
	"github.com/verifykit/verifykit/internal/apptest"
	"github.com/verifykit/verifykit/internal/token"
)

// TestLocalFlow is the README's walkthrough over real HTTP against the local
// server: send, read the code from GET /dev/outbox, verify, validate the
// token against the served JWKS.
func TestLocalFlow(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := apptest.NewWith(t, map[string]string{"ADDR": addr, "DEV_USERS": "existing@example.com"}, app.Options{Now: time.Now})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	base := "http://" + addr
	waitFor(t, base)

	var sent struct {
		VerificationID string `json:"verification_id"`
		IsUser         bool   `json:"is_user"`
	}
	post(t, base+"/auth/v1/verification", `{"target":"ANY","email":"existing@example.com","locale":"en"}`, 200, &sent)
	if !sent.IsUser {
		t.Fatal("is_user false for a DEV_USERS user")
	}
	var outbox struct {
		Messages []struct{ Channel, To, Code, Text string }
	}
	getJSON(t, base+"/dev/outbox", &outbox)
	if len(outbox.Messages) != 1 || outbox.Messages[0].To != "existing@example.com" || !strings.Contains(outbox.Messages[0].Text, outbox.Messages[0].Code) {
		t.Fatalf("outbox %+v", outbox)
	}
	var verified struct {
		Token string `json:"verification_token"`
	}
	post(t, base+"/auth/v1/verification/verify", fmt.Sprintf(`{"verification_id":%q,"verification_code":%q}`, sent.VerificationID, outbox.Messages[0].Code), 200, &verified)
	resp, err := http.Get(base + "/auth/v1/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	v, err := token.NewValidator(jwks, "verifykit", "verifykit")
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Validate(verified.Token, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "existing@example.com" || c.Channel != "email" || c.Target != "ANY" || !c.IsUser {
		t.Fatalf("claims %+v", c)
	}
}

func waitFor(t *testing.T, base string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if resp, err := http.Get(base + "/auth/v1/.well-known/jwks.json"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("server did not start")
}

func post(t *testing.T, url, body string, want int, out any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/captcha"
	"github.com/verifykit/verifykit/internal/httpapi"
	"github.com/verifykit/verifykit/internal/verification"
)

// fakeVerifications is the service behind the handler, one function per
// method: a test sets the ones its requests reach, and a call to any other
// fails the test.
type fakeVerifications struct {
	t              *testing.T
	send           func(verification.SendRequest) (verification.SendResult, verification.Address, error)
	verify         func(verification.VerifyRequest) (verification.VerifyResult, error)
	rememberAnswer func(*verification.IdempotencyTicket, verification.Answer) error
}

func (f *fakeVerifications) Send(_ context.Context, req verification.SendRequest) (verification.SendResult, verification.Address, error) {
	if f.send == nil {
		f.t.Fatal("unexpected Send")
	}
	return f.send(req)
}

func (f *fakeVerifications) Verify(_ context.Context, req verification.VerifyRequest) (verification.VerifyResult, error) {
	if f.verify == nil {
		f.t.Fatal("unexpected Verify")
	}
	return f.verify(req)
}

func (f *fakeVerifications) RememberAnswer(_ context.Context, tk *verification.IdempotencyTicket, a verification.Answer) error {
	if f.rememberAnswer == nil {
		f.t.Fatal("unexpected RememberAnswer")
	}
	return f.rememberAnswer(tk, a)
}

// fakeCaptchas is the captcha service behind the handler, as
// fakeVerifications is the verification service.
type fakeCaptchas struct {
	t     *testing.T
	new   func(ip string) (captcha.Image, error)
	solve func(token, key, ip string) (captcha.Pass, error)
}

func (f *fakeCaptchas) New(_ context.Context, ip string) (captcha.Image, error) {
	if f.new == nil {
		f.t.Fatal("unexpected captcha New")
	}
	return f.new(ip)
}

func (f *fakeCaptchas) Solve(_ context.Context, token, key, ip string) (captcha.Pass, error) {
	if f.solve == nil {
		f.t.Fatal("unexpected captcha Solve")
	}
	return f.solve(token, key, ip)
}

// fakeHandler is a handler over fakes, with a fixed clock and its log kept
// in a buffer; no store, sender or key is built.
func fakeHandler(t *testing.T, v *fakeVerifications, c *fakeCaptchas) (*httpapi.Handler, *bytes.Buffer) {
	t.Helper()
	if v == nil {
		v = &fakeVerifications{}
	}
	if c == nil {
		c = &fakeCaptchas{}
	}
	v.t, c.t = t, t
	var log bytes.Buffer
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	return httpapi.New(v, c, httpapi.Options{
		JWKS: []byte(`{"keys":[]}`),
		Log:  slog.New(slog.NewJSONHandler(&log, nil)),
		Now:  func() time.Time { return now },
	}), &log
}

// call serves one request from ip and decodes the JSON answer.
func call(t *testing.T, h *httpapi.Handler, method, path, ip, body string, header map[string]string, query map[string]string) (int, map[string]string, map[string]any) {
	t.Helper()
	if header == nil {
		header = map[string]string{}
	}
	resp := h.Serve(context.Background(), &httpapi.Request{Method: method, Path: path, Header: header, Query: query, Body: []byte(body), SourceIP: ip, RequestID: "req-1"})
	var m map[string]any
	if len(resp.Body) > 0 {
		if err := json.Unmarshal(resp.Body, &m); err != nil {
			t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, resp.Body, err)
		}
	}
	return resp.Status, resp.Header, m
}

// TestSendHandsTheServiceItsRequest: the handler passes the decoded body,
// the IP key, the captcha token (header before query) and the
// Idempotency-Key with the raw body, and renders the service's answer.
func TestSendHandsTheServiceItsRequest(t *testing.T) {
	const body = `{"target":"NOT_USER","email":"a@b.c","locale":"en"}`
	tests := []struct {
		name        string
		header      map[string]string
		query       map[string]string
		wantCaptcha *string
		wantIdem    bool
	}{
		{"plain", nil, nil, nil, false},
		{"captcha header", map[string]string{"x-captcha-token": "h"}, nil, ptr("h"), false},
		{"captcha query", nil, map[string]string{"captcha_token": "q"}, ptr("q"), false},
		{"header wins over query", map[string]string{"x-captcha-token": "h"}, map[string]string{"captcha_token": "q"}, ptr("h"), false},
		{"empty header is a token", map[string]string{"x-captcha-token": ""}, nil, ptr(""), false},
		{"empty query is none", nil, map[string]string{"captcha_token": ""}, nil, false},
		{"idempotency key", map[string]string{"idempotency-key": "k1"}, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got verification.SendRequest
			ticket := &verification.IdempotencyTicket{}
			var remembered *verification.Answer
			v := &fakeVerifications{
				send: func(req verification.SendRequest) (verification.SendResult, verification.Address, error) {
					got = req
					res := verification.SendResult{VerificationID: "vid", ExpiresIn: 600, IsUser: true}
					if req.IdempotencyKey != nil {
						res.Idempotency = ticket
					}
					return res, verification.Address{Channel: verification.Email, Identity: "a@b.c"}, nil
				},
				rememberAnswer: func(tk *verification.IdempotencyTicket, a verification.Answer) error {
					if tk != ticket {
						t.Error("RememberAnswer got another ticket than Send gave")
					}
					remembered = &a
					return nil
				},
			}
			h, _ := fakeHandler(t, v, nil)
			status, _, resp := call(t, h, "POST", sendPath, "203.0.113.9", body, tt.header, tt.query)
			if status != 200 || resp["verification_id"] != "vid" || resp["expires_in"] != 600.0 || resp["is_user"] != true {
				t.Fatalf("answer %d %v, want 200 with the service's result", status, resp)
			}
			if *got.Target != "NOT_USER" || *got.Email != "a@b.c" || got.PhoneNumber != nil || got.Locale != "en" || got.IP != "203.0.113.9" {
				t.Errorf("request %+v does not carry the body and the IP key", got)
			}
			if (got.CaptchaToken == nil) != (tt.wantCaptcha == nil) || got.CaptchaToken != nil && *got.CaptchaToken != *tt.wantCaptcha {
				t.Errorf("captcha token %v, want %v", got.CaptchaToken, tt.wantCaptcha)
			}
			if tt.wantIdem != (got.IdempotencyKey != nil) {
				t.Fatalf("idempotency key %v, want one: %v", got.IdempotencyKey, tt.wantIdem)
			}
			if tt.wantIdem && (string(got.Body) != body || remembered == nil || remembered.Status != 200) {
				t.Errorf("idempotent send: body %q, remembered %+v; want the raw body and the 200 kept", got.Body, remembered)
			}
			if !tt.wantIdem && remembered != nil {
				t.Error("an answer was remembered without an Idempotency-Key")
			}
		})
	}
}

// TestServiceErrorsGoThroughTheTable: whatever the service refuses with is
// rendered by the one table, and an unknown error never shows its text.
func TestServiceErrorsGoThroughTheTable(t *testing.T) {
	v := &fakeVerifications{
		verify: func(verification.VerifyRequest) (verification.VerifyResult, error) {
			return verification.VerifyResult{}, errors.New("secret detail")
		},
	}
	h, log := fakeHandler(t, v, nil)
	status, hdr, resp := call(t, h, "POST", "/auth/v1/verification/verify", "203.0.113.9", `{"verification_id":"x","verification_code":"123456"}`, nil, nil)
	checkEnvelope(t, status, hdr, resp, "internal_error")
	if status != 500 || bytes.Contains([]byte(resp["error_description"].(string)), []byte("secret detail")) {
		t.Fatalf("unknown error answered %d %v", status, resp)
	}
	if !bytes.Contains(log.Bytes(), []byte("secret detail")) {
		t.Error("the cause of an internal_error is not logged")
	}
}

package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/verifykit/verifykit/internal/captcha"
	"github.com/verifykit/verifykit/internal/httpapi"
	"github.com/verifykit/verifykit/internal/openapitest"
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
	return fakeHandlerWith(t, v, c, httpapi.Options{})
}

// fakeHandlerWith is fakeHandler with handler options (CORS, IP, DevOutbox,
// ...); its JWKS, Log and Now are set here unless o has them.
func fakeHandlerWith(t *testing.T, v *fakeVerifications, c *fakeCaptchas, o httpapi.Options) (*httpapi.Handler, *bytes.Buffer) {
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
	if o.JWKS == nil {
		o.JWKS = []byte(`{"keys":[]}`)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewJSONHandler(&log, nil))
	}
	if o.Now == nil {
		o.Now = func() time.Time { return now }
	}
	return httpapi.New(v, c, o), &log
}

// call serves one request from ip and decodes the JSON answer. Every
// exchange is checked against api/openapi.yaml, as apptest.Service.Do checks
// the whole app's: an answer the contract does not document fails the test.
func call(t *testing.T, h *httpapi.Handler, method, path, ip, body string, header map[string]string, query map[string]string) (int, map[string]string, map[string]any) {
	t.Helper()
	if header == nil {
		header = map[string]string{}
	}
	resp := h.Serve(context.Background(), &httpapi.Request{Method: method, Path: path, Header: header, Query: query, Body: []byte(body), SourceIP: ip, RequestID: "req-1"})
	q := url.Values{}
	for k, v := range query {
		q.Set(k, v)
	}
	target := openapitest.Target(path, q)
	openapitest.Require(t, openapitest.Exchange{
		Method: method, Target: target, RequestHeader: header, RequestBody: []byte(body),
		Status: resp.Status, ResponseHeader: resp.Header, ResponseBody: resp.Body,
	})
	var m map[string]any
	if len(resp.Body) > 0 {
		if err := json.Unmarshal(resp.Body, &m); err != nil {
			t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, resp.Body, err)
		}
	}
	return resp.Status, resp.Header, m
}

// serveLambda serves one API Gateway event (payload v1 or v2) and returns the
// answer's status, headers and body.
func serveLambda(t *testing.T, h *httpapi.Handler, event any) (int, map[string]string, string) {
	t.Helper()
	raw, err := json.Marshal(event)
	if err != nil {
		t.Fatal(err)
	}
	out, err := h.HandleLambda(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	switch r := out.(type) {
	case events.APIGatewayProxyResponse:
		return r.StatusCode, r.Headers, r.Body
	case events.APIGatewayV2HTTPResponse:
		return r.StatusCode, r.Headers, r.Body
	}
	t.Fatalf("answer of type %T", out)
	return 0, nil, ""
}

// fakeID is a verification_id as the service issues one: 48 bytes (nonce,
// encrypted handle, tag), base64url without padding.
const fakeID = "AAECAwQFBgcICQoLDA0OD6zreFv0uL19prjWx94PLD9KgfUDqu5kTKvNcYtMqEEA"

// fakeCaptchaToken is a captcha_token as the captcha service mints one:
// "v2." and 40 bytes (id, expiry, tag), base64url.
const fakeCaptchaToken = "v2.AAECAwQFBgcICQoLDA0ODwAAAABq_YbAZbP2_Xe0bjY2ckgXY8mXKQ"

// addressOf is the address the service reads from a send: a lower-case
// email, or the phone number without spaces.
func addressOf(req verification.SendRequest) verification.Address {
	switch {
	case req.Email != nil:
		return verification.Address{Channel: verification.Email, Identity: strings.ToLower(*req.Email)}
	case req.PhoneNumber != nil:
		return verification.Address{Channel: verification.SMS, Identity: strings.ReplaceAll(*req.PhoneNumber, " ", "")}
	}
	return verification.Address{}
}

// accept is a send the service accepted, answered as the service answers
// one: a verification_id, the default 600 s and the address it read.
func accept(req verification.SendRequest) (verification.SendResult, verification.Address, error) {
	return verification.SendResult{VerificationID: fakeID, ExpiresIn: 600}, addressOf(req), nil
}

// oneSendPerIP is a service that accepts one send per IP key, as
// IP_HOURLY_LIMIT=1 does, refuses the next ones with rate_limit_exceeded,
// and appends the IP key of every send it gets to keys.
func oneSendPerIP(keys *[]string) func(verification.SendRequest) (verification.SendResult, verification.Address, error) {
	spent := map[string]bool{}
	return func(req verification.SendRequest) (verification.SendResult, verification.Address, error) {
		*keys = append(*keys, req.IP)
		if spent[req.IP] {
			return verification.SendResult{}, addressOf(req), verification.RateLimited(3600)
		}
		spent[req.IP] = true
		return accept(req)
	}
}

// logValues returns the value of attribute key on every request line of
// the log text logs.
func logValues(t *testing.T, logs, key string) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil || m["msg"] != "request" && m["message"] != "request" {
			continue
		}
		v, _ := m[key].(string)
		out = append(out, v)
	}
	return out
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
					res := verification.SendResult{VerificationID: fakeID, ExpiresIn: 600, IsUser: true}
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
			if status != 200 || resp["verification_id"] != fakeID || resp["expires_in"] != 600.0 || resp["is_user"] != true {
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

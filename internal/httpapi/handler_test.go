package httpapi_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/verifykit/verifykit/internal/app"
	"github.com/verifykit/verifykit/internal/apptest"
	"github.com/verifykit/verifykit/internal/captcha"
	"github.com/verifykit/verifykit/internal/httpapi"
	"github.com/verifykit/verifykit/internal/verification"
)

const sendPath = "/auth/v1/verification"

// TestStrictBodies: a send's body is decoded strictly; a body the handler
// refuses never reaches the service, one it accepts reaches it field for
// field, and the service's refusal of those fields is answered as it comes.
func TestStrictBodies(t *testing.T) {
	_, badTarget := verification.ParseTarget("")
	_, badEmail := verification.ParseEmail("")
	phones, err := verification.NewPhoneParser(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, badPhone := phones.Parse("+1 2025550123")
	oneOf := verification.Errorf(verification.KindInvalidRequest, "exactly one of phone_number or email is required")
	const valid = `target="ANY" email="a@b.c"`
	tests := []struct {
		name       string
		body       string
		service    string // the fields the service is handed; "": it is never called
		refusal    error  // its answer to them; nil: the send is accepted
		wantStatus int
		wantError  string
	}{
		{"valid", `{"target":"ANY","email":"a@b.c"}`, valid, nil, 200, ""},
		{"unknown keys ignored", `{"target":"ANY","email":"a@b.c","locale":"en","usage":"SIGN_IN","client_id":"x"}`, valid + ` locale="en"`, nil, 200, ""},
		{"null counts as absent", `{"target":"ANY","email":"a@b.c","phone_number":null}`, valid, nil, 200, ""},
		{"whitespace around", " \n{\"target\":\"ANY\",\"email\":\"a@b.c\"}\t\n", valid, nil, 200, ""},
		{"duplicate key", `{"target":"ANY","email":"a@b.c","email":"d@e.f"}`, "", nil, 400, "invalid_request"},
		{"duplicate key, same value", `{"target":"ANY","target":"ANY","email":"a@b.c"}`, "", nil, 400, "invalid_request"},
		{"case variant key", `{"Target":"ANY","email":"a@b.c"}`, "", nil, 400, "invalid_request"},
		{"case variant beside exact", `{"target":"ANY","EMAIL":"x@y.z","email":"a@b.c"}`, "", nil, 400, "invalid_request"},
		{"case variant, escaped", `{"T\u0061RGET":"ANY","target":"ANY","email":"a@b.c"}`, "", nil, 400, "invalid_request"},
		{"escaped exact name", `{"t\u0061rget":"ANY","email":"a@b.c"}`, valid, nil, 200, ""},
		{"duplicate unknown key", `{"target":"ANY","email":"a@b.c","usage":"x","usage":"y"}`, "", nil, 400, "invalid_request"},
		{"duplicate key, escaped", `{"target":"ANY","t\u0061rget":"ANY","email":"a@b.c"}`, "", nil, 400, "invalid_request"},
		{"unknown keys, no variant", `{"usage":"SIGN_IN","target":"ANY","client_id":{"a":[1,2]},"email":"a@b.c"}`, valid, nil, 200, ""},
		{"trailing data", `{"target":"ANY","email":"a@b.c"}{}`, "", nil, 400, "invalid_request"},
		{"trailing garbage", `{"target":"ANY","email":"a@b.c"} x`, "", nil, 400, "invalid_request"},
		{"invalid UTF-8", "{\"target\":\"ANY\",\"email\":\"a\xff@b.c\"}", "", nil, 400, "invalid_request"},
		{"invalid UTF-8 in unknown key", "{\"target\":\"ANY\",\"email\":\"a@b.c\",\"x\xff\":1}", "", nil, 400, "invalid_request"},
		{"array", `[{"target":"ANY","email":"a@b.c"}]`, "", nil, 400, "invalid_request"},
		{"string", `"hello"`, "", nil, 400, "invalid_request"},
		{"empty", ``, "", nil, 400, "invalid_request"},
		{"not JSON", `target=ANY`, "", nil, 400, "invalid_request"},
		{"target number", `{"target":1,"email":"a@b.c"}`, "", nil, 400, "invalid_request"},
		{"email object", `{"target":"ANY","email":{"a":1}}`, "", nil, 400, "invalid_request"},
		{"locale number", `{"target":"ANY","email":"a@b.c","locale":5}`, "", nil, 400, "invalid_request"},
		{"target empty string", `{"target":"","email":"a@b.c"}`, `target="" email="a@b.c"`, badTarget, 400, "invalid_target"},
		{"email empty string", `{"target":"ANY","email":""}`, `target="ANY" email=""`, badEmail, 400, "invalid_email"},
		{"missing target is ANY", `{"email":"a@b.c"}`, `email="a@b.c"`, nil, 200, ""},
		{"null target is ANY", `{"target":null,"phone_number":"+86 13800138000"}`, `phone_number="+86 13800138000"`, nil, 200, ""},
		{"missing target, neither field", `{"locale":"en"}`, `locale="en"`, oneOf, 400, "invalid_request"},
		{"both", `{"target":"ANY","email":"a@b.c","phone_number":"+86 13800138000"}`, `target="ANY" phone_number="+86 13800138000" email="a@b.c"`, oneOf, 400, "invalid_request"},
		{"neither", `{"target":"ANY"}`, `target="ANY"`, oneOf, 400, "invalid_request"},
		{"bad phone", `{"target":"ANY","phone_number":"+1 2025550123"}`, `target="ANY" phone_number="+1 2025550123"`, badPhone, 400, "invalid_phone_number"},
		{"too large", `{"target":"ANY","email":"a@b.c","pad":"` + strings.Repeat("x", 8192) + `"}`, "", nil, 413, "payload_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &fakeVerifications{}
			var got *verification.SendRequest
			if tt.service != "" {
				v.send = func(req verification.SendRequest) (verification.SendResult, verification.Address, error) {
					got = &req
					if tt.refusal != nil {
						return verification.SendResult{}, verification.Address{}, tt.refusal
					}
					return accept(req)
				}
			}
			h, _ := fakeHandler(t, v, nil)
			status, hdr, body := call(t, h, "POST", sendPath, "203.0.113.9", tt.body, nil, nil)
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %v)", status, tt.wantStatus, body)
			}
			if tt.service != "" {
				if got == nil {
					t.Fatal("the send never reached the service")
				}
				if f := handed(*got); f != tt.service || got.IP != "203.0.113.9" {
					t.Fatalf("the service was handed %s from %q, want %s from 203.0.113.9", f, got.IP, tt.service)
				}
			}
			if tt.wantError == "" {
				if body["verification_id"] != fakeID {
					t.Fatalf("answer %v does not carry the service's verification_id", body)
				}
				return
			}
			checkEnvelope(t, status, hdr, body, tt.wantError)
		})
	}
}

// handed writes the body fields of a send as the service got them, the
// absent ones left out.
func handed(req verification.SendRequest) string {
	var f []string
	for _, p := range []struct {
		name string
		v    *string
	}{{"target", req.Target}, {"phone_number", req.PhoneNumber}, {"email", req.Email}} {
		if p.v != nil {
			f = append(f, fmt.Sprintf("%s=%q", p.name, *p.v))
		}
	}
	if req.Locale != "" {
		f = append(f, fmt.Sprintf("locale=%q", req.Locale))
	}
	return strings.Join(f, " ")
}

// TestSendFieldRulesOnTheApp: through the whole app, the fields the handler
// hands on meet the service's rules (an absent target is ANY; exactly one
// valid phone or email), and a refusal sends nothing.
func TestSendFieldRulesOnTheApp(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantError  string
	}{
		{"target empty string", `{"target":"","email":"a@b.c"}`, 400, "invalid_target"},
		{"email empty string", `{"target":"ANY","email":""}`, 400, "invalid_email"},
		{"missing target is ANY", `{"email":"a@b.c"}`, 200, ""},
		{"null target is ANY", `{"target":null,"phone_number":"+86 13800138000"}`, 200, ""},
		{"missing target, neither field", `{"locale":"en"}`, 400, "invalid_request"},
		{"both", `{"target":"ANY","email":"a@b.c","phone_number":"+86 13800138000"}`, 400, "invalid_request"},
		{"neither", `{"target":"ANY"}`, 400, "invalid_request"},
		{"bad phone", `{"target":"ANY","phone_number":"+1 2025550123"}`, 400, "invalid_phone_number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := apptest.New(t, nil)
			status, hdr, body := s.Do(t, "POST", sendPath, "203.0.113.9", tt.body, nil)
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %v)", status, tt.wantStatus, body)
			}
			if tt.wantError == "" {
				return
			}
			checkEnvelope(t, status, hdr, body, tt.wantError)
			if n := len(s.Outbox.Messages()); n != 0 {
				t.Fatalf("a refused request sent %d messages", n)
			}
		})
	}
}

// checkEnvelope checks the error envelope every refusal shares.
func checkEnvelope(t *testing.T, status int, hdr map[string]string, body map[string]any, want string) {
	t.Helper()
	if body["error"] != want {
		t.Fatalf("error %v, want %s (body %v)", body["error"], want, body)
	}
	code, ok := body["error_code"].(float64)
	if !ok || int(code)/1000 != status/100 && status != 428 && status != 413 {
		t.Fatalf("error_code %v does not match status %d", body["error_code"], status)
	}
	if d, _ := body["error_description"].(string); d == "" {
		t.Fatal("no error_description")
	}
	if !strings.HasPrefix(hdr["Content-Type"], "application/json") {
		t.Fatalf("Content-Type %q", hdr["Content-Type"])
	}
}

func TestEmptyCaptchaBodyIsEmptyObject(t *testing.T) {
	c := &fakeCaptchas{new: func(ip string) (captcha.Image, error) {
		return captcha.Image{Data: "data:image/png;base64,AAAA", Token: "tok", ExpiresIn: 300}, nil
	}}
	h, _ := fakeHandler(t, nil, c)
	for _, body := range []string{"", "{}", `{"client_id":"x"}`} {
		status, _, resp := call(t, h, "POST", "/auth/v1/captcha/data", "203.0.113.9", body, nil, nil)
		if status != 200 || resp["type"] != "image" || !strings.HasPrefix(resp["data"].(string), "data:image/png;base64,") {
			t.Fatalf("body %q: %d %v", body, status, resp)
		}
	}
	c.new = nil // a refused body reaches no captcha
	if status, _, resp := call(t, h, "POST", "/auth/v1/captcha/data", "203.0.113.9", "[]", nil, nil); status != 400 || resp["error"] != "invalid_request" {
		t.Fatalf("body []: %d %v", status, resp)
	}
}

// TestRouting runs over fakes that fail the test if reached: a request to
// no route, or with the wrong method, gets no further than the router.
func TestRouting(t *testing.T) {
	h, _ := fakeHandler(t, nil, nil) // no outbox, as in Lambda
	tests := []struct {
		method, path string
		want         int
		wantError    string
	}{
		{"GET", "/auth/v1/nope", 404, "not_found"},
		{"POST", "/auth", 404, "not_found"},
		{"GET", sendPath, 405, "method_not_allowed"},
		{"PUT", "/auth/v1/verification/verify", 405, "method_not_allowed"},
		{"POST", "/auth/v1/.well-known/jwks.json", 405, "method_not_allowed"},
		{"POST", "/auth/v1/verification/", 404, "not_found"},
		{"GET", "/AUTH/V1/VERIFICATION", 404, "not_found"},
	}
	for _, tt := range tests {
		status, hdr, body := call(t, h, tt.method, tt.path, "203.0.113.9", "{}", nil, nil)
		if status != tt.want {
			t.Fatalf("%s %s: %d, want %d", tt.method, tt.path, status, tt.want)
		}
		checkEnvelope(t, status, hdr, body, tt.wantError)
		if tt.want == 405 && hdr["Allow"] == "" {
			t.Fatalf("%s %s: no Allow header", tt.method, tt.path)
		}
	}
	if status, _, _ := call(t, h, "GET", "/dev/outbox", "203.0.113.9", "", nil, nil); status != 404 {
		t.Fatalf("/dev/outbox without the outbox: %d, want 404", status)
	}
}

// TestRetryAfterOnEvery429: every 429 a service answers, on each route that
// has one, and a kept 429 given again for an Idempotency-Key, carries its
// wait both as the Retry-After header and as retry_after.
func TestRetryAfterOnEvery429(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	const send, verify = `{"target":"ANY","email":"a@b.c"}`, `{"verification_id":"` + fakeID + `","verification_code":"123456"}`
	refuseSend := func(err error) *fakeVerifications {
		return &fakeVerifications{send: func(req verification.SendRequest) (verification.SendResult, verification.Address, error) {
			return verification.SendResult{}, addressOf(req), err
		}}
	}
	refuseVerify := func(err error) *fakeVerifications {
		return &fakeVerifications{verify: func(verification.VerifyRequest) (verification.VerifyResult, error) {
			return verification.VerifyResult{}, err
		}}
	}
	kept := &verification.Answer{Status: 429, RetryAfter: 50,
		Body: []byte(`{"error":"rate_limit_exceeded","error_code":4029,"error_description":"Verification code send frequency too high, please try again in 50 seconds","retry_after":50}`)}
	tests := []struct {
		name      string
		path      string
		body      string
		header    map[string]string
		v         *fakeVerifications
		c         *fakeCaptchas
		wantError string
		wantWait  int
	}{
		{"send: cooldown or IP budget", sendPath, send, nil, refuseSend(verification.RateLimited(3590)), nil, "rate_limit_exceeded", 3590},
		{"send: a kept 429 given again", sendPath, send, map[string]string{"idempotency-key": "k1"},
			&fakeVerifications{send: func(req verification.SendRequest) (verification.SendResult, verification.Address, error) {
				return verification.SendResult{Replay: kept}, addressOf(req), nil
			}}, nil, "rate_limit_exceeded", 50},
		{"verify: IP budget", "/auth/v1/verification/verify", verify, nil, refuseVerify(verification.RequestsLimited(1200)), nil, "rate_limit_exceeded", 1200},
		{"verify: too many attempts", "/auth/v1/verification/verify", verify, nil,
			refuseVerify(verification.Limits{Cooldown: time.Minute}.TooManyAttempts(now.Add(-20*time.Second), now)), nil, "too_many_attempts", 40},
		{"captcha data: IP budget", "/auth/v1/captcha/data", `{}`, nil, nil,
			&fakeCaptchas{new: func(string) (captcha.Image, error) { return captcha.Image{}, verification.RequestsLimited(7) }}, "rate_limit_exceeded", 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := fakeHandler(t, tt.v, tt.c)
			st, hdr, b := call(t, h, "POST", tt.path, "203.0.113.9", tt.body, tt.header, nil)
			if st != 429 {
				t.Fatalf("%d %v, want 429", st, b)
			}
			checkEnvelope(t, st, hdr, b, tt.wantError)
			ra, err := strconv.Atoi(hdr["Retry-After"])
			if err != nil || ra != tt.wantWait || float64(ra) != b["retry_after"] {
				t.Fatalf("Retry-After %q, retry_after %v; want %d for both", hdr["Retry-After"], b["retry_after"], tt.wantWait)
			}
			if replayed := hdr["Idempotent-Replayed"] == "true"; replayed != (tt.header != nil) {
				t.Fatalf("Idempotent-Replayed %q", hdr["Idempotent-Replayed"])
			}
		})
	}
}

// TestRetryAfterOfTheStoresLimits: through the whole app, the waits the
// store counts reach Retry-After: an IP budget spent 10.5 s ago for an hour
// (whatever the target), and a code killed by its 5th wrong guess 20 s after
// its send, under a 60 s cooldown.
func TestRetryAfterOfTheStoresLimits(t *testing.T) {
	t.Run("IP budget", func(t *testing.T) {
		s := apptest.New(t, map[string]string{"IP_HOURLY_LIMIT": "1", "CAPTCHA_IP_THRESHOLD": "0", "CAPTCHA_TARGET_THRESHOLD": "0"})
		if st, _, b := s.Do(t, "POST", sendPath, "203.0.113.9", `{"target":"ANY","email":"a@b.c"}`, nil); st != 200 {
			t.Fatalf("first send: %d %v", st, b)
		}
		s.Clock.Advance(10_500 * time.Millisecond)
		for _, body := range []string{`{"target":"ANY","email":"a@b.c"}`, `{"target":"ANY","email":"other@b.c"}`} {
			st, hdr, b := s.Do(t, "POST", sendPath, "203.0.113.9", body, nil)
			if st != 429 {
				t.Fatalf("%s: %d %v, want 429", body, st, b)
			}
			checkEnvelope(t, st, hdr, b, "rate_limit_exceeded")
			// 3589.5 s left, rounded up.
			if hdr["Retry-After"] != "3590" || b["retry_after"] != 3590.0 {
				t.Fatalf("Retry-After %q, retry_after %v; want 3590", hdr["Retry-After"], b["retry_after"])
			}
		}
	})
	t.Run("too many attempts", func(t *testing.T) {
		s := apptest.New(t, nil)
		_, _, sent := s.Do(t, "POST", sendPath, "203.0.113.9", `{"target":"ANY","email":"a@b.c"}`, nil)
		wrong := "000000"
		if s.LastCode(t) == wrong {
			wrong = "111111"
		}
		s.Clock.Advance(20 * time.Second)
		body := fmt.Sprintf(`{"verification_id":%q,"verification_code":%q}`, sent["verification_id"], wrong)
		for i := 0; i < 4; i++ {
			s.Do(t, "POST", "/auth/v1/verification/verify", "203.0.113.9", body, nil)
		}
		st, hdr, b := s.Do(t, "POST", "/auth/v1/verification/verify", "203.0.113.9", body, nil)
		checkEnvelope(t, st, hdr, b, "too_many_attempts")
		if st != 429 || hdr["Retry-After"] != "40" || b["retry_after"] != 40.0 {
			t.Fatalf("5th wrong code: %d, Retry-After %q, retry_after %v; want 429 and 40 (60 s cooldown, 20 s gone)", st, hdr["Retry-After"], b["retry_after"])
		}
	})
}

// TestLambdaEvents: a REST event (payload v1, base64 body, base path) and an
// HTTP API event (payload v2, named stage) reach the send with their bodies
// and the platform's source IP, never X-Forwarded-For; a client mistake is
// an answer, never a function error.
func TestLambdaEvents(t *testing.T) {
	var got []verification.SendRequest
	v := &fakeVerifications{send: func(req verification.SendRequest) (verification.SendResult, verification.Address, error) {
		got = append(got, req)
		return accept(req)
	}}
	h, log := fakeHandler(t, v, nil)
	body := `{"target":"ANY","email":"a@b.c"}`
	v1 := events.APIGatewayProxyRequest{
		Resource:        sendPath,
		Path:            "/prod" + sendPath, // a base path mapping: routing uses Resource
		HTTPMethod:      "POST",
		Headers:         map[string]string{"X-Forwarded-For": "1.2.3.4", "Content-Type": "text/plain"},
		Body:            base64.StdEncoding.EncodeToString([]byte(body)),
		IsBase64Encoded: true,
		RequestContext: events.APIGatewayProxyRequestContext{
			RequestID: "req-v1", Stage: "prod",
			Identity: events.APIGatewayRequestIdentity{SourceIP: "198.51.100.7"},
		},
	}
	if st, _, b := serveLambda(t, h, v1); st != 200 || !strings.Contains(b, `"verification_id":"`+fakeID+`"`) {
		t.Fatalf("v1: %d %s", st, b)
	}

	v2 := events.APIGatewayV2HTTPRequest{
		Version:  "2.0",
		RouteKey: "$default",
		RawPath:  "/prod" + sendPath,
		Headers:  map[string]string{"x-forwarded-for": "1.2.3.4"},
		Body:     `{"target":"ANY","email":"other@b.c"}`,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: "req-v2", Stage: "prod",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/prod" + sendPath, SourceIP: "198.51.100.7"},
		},
	}
	if st, _, b := serveLambda(t, h, v2); st != 200 {
		t.Fatalf("v2: %d %s", st, b)
	}
	// Both sends were handed 198.51.100.7, not the forwarded 1.2.3.4.
	if len(got) != 2 || handed(got[0]) != `target="ANY" email="a@b.c"` || handed(got[1]) != `target="ANY" email="other@b.c"` {
		t.Fatalf("the service was handed %+v", got)
	}
	if got[0].IP != "198.51.100.7" || got[1].IP != "198.51.100.7" {
		t.Fatalf("IP keys %q and %q, want the source IP 198.51.100.7", got[0].IP, got[1].IP)
	}
	if strings.Contains(log.String(), "1.2.3.4") {
		t.Fatal("X-Forwarded-For reached the logs")
	}
	// A client mistake is an answer, never a function error (serveLambda
	// fails on one), and reaches no service.
	v.send = nil
	v2.Body = `{"target":`
	if st, _, b := serveLambda(t, h, v2); st != 400 {
		t.Fatalf("bad body: %d %s", st, b)
	}
}

// TestSourceIPIsThePlatformsNotXForwardedFor: with no trusted proxy, the
// service is handed the platform's source IP as the IP key whatever
// X-Forwarded-For says, so a new header buys no new IP budget.
func TestSourceIPIsThePlatformsNotXForwardedFor(t *testing.T) {
	var keys []string
	h, _ := fakeHandler(t, &fakeVerifications{send: oneSendPerIP(&keys)}, nil)
	xff := map[string]string{"x-forwarded-for": "192.0.2.1"}
	if st, _, b := call(t, h, "POST", sendPath, "203.0.113.9", `{"target":"ANY","email":"a@b.c"}`, xff, nil); st != 200 {
		t.Fatalf("%d %v", st, b)
	}
	xff["x-forwarded-for"] = "192.0.2.2"
	if st, _, b := call(t, h, "POST", sendPath, "203.0.113.9", `{"target":"ANY","email":"b@b.c"}`, xff, nil); st != 429 {
		t.Fatalf("a new X-Forwarded-For bought a new IP budget: %d %v", st, b)
	}
	if strings.Join(keys, " ") != "203.0.113.9 203.0.113.9" {
		t.Fatalf("IP keys handed to the service: %v, want the source IP twice", keys)
	}
}

// TestLogsAndMetrics runs a full send, verify and captcha and checks that the
// logs hold one line per request, masked targets, and no code, token, key or
// raw target; and that metrics are EMF lines.
func TestLogsAndMetrics(t *testing.T) {
	metrics := &apptest.SafeBuffer{}
	s := apptest.NewWith(t, map[string]string{"DEV_USERS": "existing@example.com"}, app.Options{Metrics: metrics})
	_, _, sent := s.Do(t, "POST", sendPath, "203.0.113.9", `{"target":"ANY","email":"Existing@Example.com"}`, nil)
	code := s.LastCode(t)
	_, _, sms := s.Do(t, "POST", sendPath, "203.0.113.9", `{"target":"ANY","phone_number":"+86 13800138000"}`, nil)
	smsCode := s.LastCode(t)
	_, _, verified := s.Do(t, "POST", "/auth/v1/verification/verify", "203.0.113.9",
		fmt.Sprintf(`{"verification_id":%q,"verification_code":%q}`, sent["verification_id"], code), nil)
	s.Do(t, "POST", "/auth/v1/verification/verify", "203.0.113.9",
		fmt.Sprintf(`{"verification_id":%q,"verification_code":"000000"}`, sms["verification_id"]), nil)
	s.Do(t, "POST", sendPath, "203.0.113.9", `{"target":"USER","email":"missing@example.com"}`, nil)
	_, _, img := s.Do(t, "POST", "/auth/v1/captcha/data", "203.0.113.9", `{}`, nil)
	s.Do(t, "POST", "/auth/v1/captcha/data/verify", "203.0.113.9", fmt.Sprintf(`{"token":%q,"key":"nope"}`, img["token"]), nil)
	tok, _ := verified["verification_token"].(string)
	if tok == "" {
		t.Fatalf("no token: %v", verified)
	}
	// The outbox prints codes on purpose (local mode); everything else must
	// not. Keep only the JSON log lines.
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.Stdout.String()))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "outbox:") {
			continue
		}
		for _, secret := range []string{code, smsCode, tok, tok[len(tok)-40:], fmt.Sprint(sent["verification_id"]), "Existing@Example.com", "existing@example.com", "missing@example.com", "13800138000", "dGVzdC1obWFj", fmt.Sprint(img["token"])} {
			if strings.Contains(line, secret) {
				t.Errorf("log line holds %q: %s", secret, line)
			}
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if m["message"] == "request" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 7 {
		t.Fatalf("%d request lines, want 7", len(lines))
	}
	wantTargets := []string{"e***@example.com", "+86 138****8000", "e***@example.com", "", "m***@example.com", "", ""}
	for i, l := range lines {
		for _, k := range []string{"request_id", "route", "outcome", "latency_ms", "status"} {
			if _, ok := l[k]; !ok {
				t.Errorf("line %d has no %s: %v", i, k, l)
			}
		}
		if got, _ := l["target"].(string); got != wantTargets[i] {
			t.Errorf("line %d target %q, want %q", i, got, wantTargets[i])
		}
	}
	if lines[3]["error"] != "invalid_verification_code" || lines[4]["error"] != "user_not_found" {
		t.Errorf("error names: %v, %v", lines[3]["error"], lines[4]["error"])
	}
	// Metrics: EMF lines for the two accepted sends, the refused one and the
	// verifies.
	var accepted, refused int
	sc = bufio.NewScanner(strings.NewReader(metrics.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("metrics line not JSON: %s", sc.Text())
		}
		aws, ok := m["_aws"].(map[string]any)
		if !ok || aws["CloudWatchMetrics"] == nil || m["Service"] != "verifykit" {
			t.Fatalf("not an EMF line: %s", sc.Text())
		}
		if m["SendsAccepted"] == 1.0 {
			accepted++
		}
		if m["SendsRefused"] == 1.0 && m["Outcome"] == "user_not_found" {
			refused++
		}
	}
	if accepted != 2 || refused != 1 {
		t.Fatalf("metrics: %d accepted, %d refused by user_not_found; want 2 and 1", accepted, refused)
	}
}

// TestNetHTTP: the local server hands the send its body and the TCP peer as
// the IP key, answers with no-store and a request id, and refuses an
// oversized body with 413 before any service.
func TestNetHTTP(t *testing.T) {
	var got []verification.SendRequest
	v := &fakeVerifications{send: func(req verification.SendRequest) (verification.SendResult, verification.Address, error) {
		got = append(got, req)
		return accept(req)
	}}
	h, _ := fakeHandler(t, v, nil)
	srv := newServer(t, h)
	resp, err := http.Post(srv+sendPath, "text/plain", strings.NewReader(`{"target":"ANY","email":"a@b.c"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	if !strings.Contains(string(b), `"verification_id":"`+fakeID+`"`) {
		t.Fatalf("answer %s does not carry the service's verification_id", b)
	}
	if len(got) != 1 || handed(got[0]) != `target="ANY" email="a@b.c"` || got[0].IP != "127.0.0.1" {
		t.Fatalf("the service was handed %+v, want the body from 127.0.0.1", got)
	}
	v.send = nil
	resp, err = http.Post(srv+sendPath, "application/json", strings.NewReader(`{"pad":"`+strings.Repeat("x", 20000)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("oversized body: %d, want 413", resp.StatusCode)
	}
}

// TestCORS: an allowed origin's preflight gets the CORS headers, and its
// answers, errors included, carry them; another origin's requests are
// refused without them and reach no service; with no origin listed every
// Origin is refused, and a preflight without one gets no CORS headers.
func TestCORS(t *testing.T) {
	v := &fakeVerifications{send: func(verification.SendRequest) (verification.SendResult, verification.Address, error) {
		return verification.SendResult{}, verification.Address{}, verification.Errorf(verification.KindInvalidRequest, "exactly one of phone_number or email is required")
	}}
	h, _ := fakeHandlerWith(t, v, nil, httpapi.Options{CORS: httpapi.NewCORS([]string{"https://app.example.com"})})
	allowed := map[string]string{"origin": "https://app.example.com", "access-control-request-method": "POST"}
	st, hdr, _ := call(t, h, "OPTIONS", sendPath, "203.0.113.9", "", allowed, nil)
	if st != 204 || hdr["Access-Control-Allow-Origin"] != "https://app.example.com" ||
		hdr["Access-Control-Allow-Methods"] != "POST" || !strings.Contains(hdr["Access-Control-Allow-Headers"], "x-captcha-token") ||
		!strings.Contains(hdr["Access-Control-Allow-Headers"], "idempotency-key") {
		t.Fatalf("preflight: %d %v", st, hdr)
	}
	st, hdr, _ = call(t, h, "OPTIONS", sendPath, "203.0.113.9", "", map[string]string{"origin": "https://evil.example"}, nil)
	if st != 403 || hdr["Access-Control-Allow-Origin"] != "" || hdr["Access-Control-Allow-Methods"] != "" {
		t.Fatalf("preflight from another origin: %d %v", st, hdr)
	}
	// Answers, errors included, carry the header for the allowed origin only.
	st, hdr, _ = call(t, h, "POST", sendPath, "203.0.113.9", `{"target":"ANY"}`, map[string]string{"origin": "https://app.example.com"}, nil)
	if st != 400 || hdr["Access-Control-Allow-Origin"] != "https://app.example.com" || hdr["Vary"] != "Origin" || hdr["Access-Control-Expose-Headers"] != "Retry-After, Idempotent-Replayed" {
		t.Fatalf("answer %d, headers %v", st, hdr)
	}
	v.send = nil // another origin reaches no service
	st, hdr, _ = call(t, h, "POST", sendPath, "203.0.113.9", `{"target":"ANY"}`, map[string]string{"origin": "https://evil.example"}, nil)
	if _, ok := hdr["Access-Control-Allow-Origin"]; ok || st != 403 {
		t.Fatalf("another origin got %d %v", st, hdr)
	}
	if st, _, _ := call(t, h, "OPTIONS", "/auth/v1/nope", "203.0.113.9", "", allowed, nil); st != 404 {
		t.Fatalf("preflight of an unknown route: %d", st)
	}
	// With no origin listed (no CORS at all, or an empty list as Lambda
	// builds it without CORS_ALLOWED_ORIGINS), an Origin is refused (the
	// Origin rule) and a preflight without one gets no CORS headers.
	for _, cors := range []*httpapi.CORS{nil, httpapi.NewCORS(nil)} {
		plain, _ := fakeHandlerWith(t, nil, nil, httpapi.Options{CORS: cors})
		st, hdr, _ = call(t, plain, "OPTIONS", sendPath, "203.0.113.9", "", allowed, nil)
		if st != 403 || hdr["Access-Control-Allow-Origin"] != "" {
			t.Fatalf("no CORS configured: %d %v", st, hdr)
		}
		st, hdr, _ = call(t, plain, "OPTIONS", sendPath, "203.0.113.9", "", map[string]string{"access-control-request-method": "POST"}, nil)
		if st != 204 || hdr["Access-Control-Allow-Origin"] != "" {
			t.Fatalf("no CORS configured, no Origin: %d %v", st, hdr)
		}
		for k := range hdr {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Fatalf("no CORS configured, no Origin: the preflight carries %s", k)
			}
		}
	}
	// Nor does a preflight without an Origin where origins are listed.
	if st, hdr, _ = call(t, h, "OPTIONS", sendPath, "203.0.113.9", "", map[string]string{"access-control-request-method": "POST"}, nil); st != 204 {
		t.Fatalf("no Origin: %d %v", st, hdr)
	}
	for k := range hdr {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Fatalf("no Origin: the preflight carries %s", k)
		}
	}
}

// TestCORSAllowedOriginsConfig: CORS_ALLOWED_ORIGINS reaches the handler.
func TestCORSAllowedOriginsConfig(t *testing.T) {
	s := apptest.New(t, map[string]string{"CORS_ALLOWED_ORIGINS": "https://app.example.com,null", "CAPTCHA_IP_THRESHOLD": "0", "CAPTCHA_TARGET_THRESHOLD": "0"})
	for i, o := range []string{"https://app.example.com", "null"} {
		body := fmt.Sprintf(`{"target":"ANY","email":"o%d@b.c"}`, i)
		if st, hdr, b := s.Do(t, "POST", sendPath, "203.0.113.9", body, map[string]string{"origin": o}); st != 200 || hdr["Access-Control-Allow-Origin"] != o {
			t.Fatalf("listed origin %s: %d %v %v", o, st, hdr, b)
		}
	}
	if st, _, b := s.Do(t, "POST", sendPath, "203.0.113.9", `{"target":"ANY","email":"x@b.c"}`, map[string]string{"origin": "https://evil.example"}); st != 403 {
		t.Fatalf("another origin: %d %v, want 403", st, b)
	}
}

// TestTooManyAttemptsCarriesRetryAfter: too_many_attempts is a 429 too, and
// says when the target's cooldown lets a new code be sent.
func TestTooManyAttemptsCarriesRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var got *verification.VerifyRequest
	v := &fakeVerifications{verify: func(req verification.VerifyRequest) (verification.VerifyResult, error) {
		got = &req
		// The 5th wrong code, 20 s after the send, under a 60 s cooldown.
		return verification.VerifyResult{}, verification.Limits{Cooldown: time.Minute}.TooManyAttempts(now.Add(-20*time.Second), now)
	}}
	h, _ := fakeHandler(t, v, nil)
	body := fmt.Sprintf(`{"verification_id":%q,"verification_code":"000000"}`, fakeID)
	st, hdr, b := call(t, h, "POST", "/auth/v1/verification/verify", "203.0.113.9", body, nil, nil)
	checkEnvelope(t, st, hdr, b, "too_many_attempts")
	if st != 429 || hdr["Retry-After"] != "40" || b["retry_after"] != 40.0 {
		t.Fatalf("5th wrong code: %d, Retry-After %q, retry_after %v; want 429 and 40 (60 s cooldown, 20 s gone)", st, hdr["Retry-After"], b["retry_after"])
	}
	if got == nil || *got.VerificationID != fakeID || *got.VerificationCode != "000000" || got.IP != "203.0.113.9" {
		t.Fatalf("the service was handed %+v", got)
	}
}

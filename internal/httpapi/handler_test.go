package httpapi_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/verifykit/verifykit/internal/app"
	"github.com/verifykit/verifykit/internal/apptest"
	"github.com/verifykit/verifykit/internal/captcha"
)

const sendPath = "/auth/v1/verification"

func TestStrictBodies(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantError  string
	}{
		{"valid", `{"target":"ANY","email":"a@b.c"}`, 200, ""},
		{"unknown keys ignored", `{"target":"ANY","email":"a@b.c","locale":"en","usage":"SIGN_IN","client_id":"x"}`, 200, ""},
		{"null counts as absent", `{"target":"ANY","email":"a@b.c","phone_number":null}`, 200, ""},
		{"whitespace around", " \n{\"target\":\"ANY\",\"email\":\"a@b.c\"}\t\n", 200, ""},
		{"duplicate key", `{"target":"ANY","email":"a@b.c","email":"d@e.f"}`, 400, "invalid_request"},
		{"duplicate key, same value", `{"target":"ANY","target":"ANY","email":"a@b.c"}`, 400, "invalid_request"},
		{"case variant key", `{"Target":"ANY","email":"a@b.c"}`, 400, "invalid_request"},
		{"case variant beside exact", `{"target":"ANY","EMAIL":"x@y.z","email":"a@b.c"}`, 400, "invalid_request"},
		{"case variant, escaped", `{"T\u0061RGET":"ANY","target":"ANY","email":"a@b.c"}`, 400, "invalid_request"},
		{"escaped exact name", `{"t\u0061rget":"ANY","email":"a@b.c"}`, 200, ""},
		{"duplicate unknown key", `{"target":"ANY","email":"a@b.c","usage":"x","usage":"y"}`, 400, "invalid_request"},
		{"duplicate key, escaped", `{"target":"ANY","t\u0061rget":"ANY","email":"a@b.c"}`, 400, "invalid_request"},
		{"unknown keys, no variant", `{"usage":"SIGN_IN","target":"ANY","client_id":{"a":[1,2]},"email":"a@b.c"}`, 200, ""},
		{"trailing data", `{"target":"ANY","email":"a@b.c"}{}`, 400, "invalid_request"},
		{"trailing garbage", `{"target":"ANY","email":"a@b.c"} x`, 400, "invalid_request"},
		{"invalid UTF-8", "{\"target\":\"ANY\",\"email\":\"a\xff@b.c\"}", 400, "invalid_request"},
		{"invalid UTF-8 in unknown key", "{\"target\":\"ANY\",\"email\":\"a@b.c\",\"x\xff\":1}", 400, "invalid_request"},
		{"array", `[{"target":"ANY","email":"a@b.c"}]`, 400, "invalid_request"},
		{"string", `"hello"`, 400, "invalid_request"},
		{"empty", ``, 400, "invalid_request"},
		{"not JSON", `target=ANY`, 400, "invalid_request"},
		{"target number", `{"target":1,"email":"a@b.c"}`, 400, "invalid_request"},
		{"email object", `{"target":"ANY","email":{"a":1}}`, 400, "invalid_request"},
		{"locale number", `{"target":"ANY","email":"a@b.c","locale":5}`, 400, "invalid_request"},
		{"target empty string", `{"target":"","email":"a@b.c"}`, 400, "invalid_target"},
		{"email empty string", `{"target":"ANY","email":""}`, 400, "invalid_email"},
		{"missing target is ANY", `{"email":"a@b.c"}`, 200, ""},
		{"null target is ANY", `{"target":null,"phone_number":"+86 13800138000"}`, 200, ""},
		{"missing target, neither field", `{"locale":"en"}`, 400, "invalid_request"},
		{"both", `{"target":"ANY","email":"a@b.c","phone_number":"+86 13800138000"}`, 400, "invalid_request"},
		{"neither", `{"target":"ANY"}`, 400, "invalid_request"},
		{"bad phone", `{"target":"ANY","phone_number":"+1 2025550123"}`, 400, "invalid_phone_number"},
		{"too large", `{"target":"ANY","email":"a@b.c","pad":"` + strings.Repeat("x", 8192) + `"}`, 413, "payload_too_large"},
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

func TestRetryAfterOnEvery429(t *testing.T) {
	s := apptest.New(t, map[string]string{"IP_HOURLY_LIMIT": "1", "CAPTCHA_IP_THRESHOLD": "0", "CAPTCHA_TARGET_THRESHOLD": "0"})
	if st, _, b := s.Do(t, "POST", sendPath, "203.0.113.9", `{"target":"ANY","email":"a@b.c"}`, nil); st != 200 {
		t.Fatalf("first send: %d %v", st, b)
	}
	s.Clock.Advance(10_500 * 1e6) // 10.5 s
	for _, body := range []string{`{"target":"ANY","email":"a@b.c"}`, `{"target":"ANY","email":"other@b.c"}`} {
		st, hdr, b := s.Do(t, "POST", sendPath, "203.0.113.9", body, nil)
		if st != 429 {
			t.Fatalf("%s: %d %v, want 429", body, st, b)
		}
		checkEnvelope(t, st, hdr, b, "rate_limit_exceeded")
		ra, err := strconv.Atoi(hdr["Retry-After"])
		if err != nil || ra < 1 || float64(ra) != b["retry_after"] {
			t.Fatalf("Retry-After %q, retry_after %v", hdr["Retry-After"], b["retry_after"])
		}
		// IP budget spent 10.5 s ago for an hour: 3589.5 s left, rounded up.
		if ra != 3590 {
			t.Fatalf("Retry-After %d, want 3590", ra)
		}
	}
}

func TestLambdaEvents(t *testing.T) {
	s := apptest.New(t, nil)
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
	raw, _ := json.Marshal(v1)
	out, err := s.Handler.HandleLambda(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	r1 := out.(events.APIGatewayProxyResponse)
	if r1.StatusCode != 200 || !strings.Contains(r1.Body, "verification_id") {
		t.Fatalf("v1: %d %s", r1.StatusCode, r1.Body)
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
	raw, _ = json.Marshal(v2)
	out, err = s.Handler.HandleLambda(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	r2 := out.(events.APIGatewayV2HTTPResponse)
	if r2.StatusCode != 200 {
		t.Fatalf("v2: %d %s", r2.StatusCode, r2.Body)
	}
	// Both sends counted against 198.51.100.7, not the forwarded 1.2.3.4.
	logs := s.Stdout.String()
	if strings.Contains(logs, "1.2.3.4") {
		t.Fatal("X-Forwarded-For reached the logs")
	}
	// A client mistake is an answer, never a function error.
	v2.Body = `{"target":`
	raw, _ = json.Marshal(v2)
	out, err = s.Handler.HandleLambda(context.Background(), raw)
	if err != nil || out.(events.APIGatewayV2HTTPResponse).StatusCode != 400 {
		t.Fatalf("bad body: %v %v", out, err)
	}
}

func TestSourceIPIsThePlatformsNotXForwardedFor(t *testing.T) {
	s := apptest.New(t, map[string]string{"IP_HOURLY_LIMIT": "1", "CAPTCHA_IP_THRESHOLD": "0"})
	xff := map[string]string{"x-forwarded-for": "192.0.2.1"}
	if st, _, _ := s.Do(t, "POST", sendPath, "203.0.113.9", `{"target":"ANY","email":"a@b.c"}`, xff); st != 200 {
		t.Fatal(st)
	}
	xff["x-forwarded-for"] = "192.0.2.2"
	if st, _, b := s.Do(t, "POST", sendPath, "203.0.113.9", `{"target":"ANY","email":"b@b.c"}`, xff); st != 429 {
		t.Fatalf("a new X-Forwarded-For bought a new IP budget: %d %v", st, b)
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

func TestNetHTTP(t *testing.T) {
	s := apptest.New(t, nil)
	srv := newServer(t, s.Handler)
	resp, err := http.Post(srv+sendPath, "text/plain", strings.NewReader(`{"target":"ANY","email":"a@b.c"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	resp, err = http.Post(srv+sendPath, "application/json", strings.NewReader(`{"pad":"`+strings.Repeat("x", 20000)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("oversized body: %d, want 413", resp.StatusCode)
	}
}

func TestCORS(t *testing.T) {
	s := apptest.New(t, map[string]string{"CORS_ALLOWED_ORIGINS": "https://app.example.com"})
	allowed := map[string]string{"origin": "https://app.example.com", "access-control-request-method": "POST"}
	st, hdr, _ := s.Do(t, "OPTIONS", sendPath, "203.0.113.9", "", allowed)
	if st != 204 || hdr["Access-Control-Allow-Origin"] != "https://app.example.com" ||
		hdr["Access-Control-Allow-Methods"] != "POST" || !strings.Contains(hdr["Access-Control-Allow-Headers"], "x-captcha-token") ||
		!strings.Contains(hdr["Access-Control-Allow-Headers"], "idempotency-key") {
		t.Fatalf("preflight: %d %v", st, hdr)
	}
	st, hdr, _ = s.Do(t, "OPTIONS", sendPath, "203.0.113.9", "", map[string]string{"origin": "https://evil.example"})
	if st != 403 || hdr["Access-Control-Allow-Origin"] != "" || hdr["Access-Control-Allow-Methods"] != "" {
		t.Fatalf("preflight from another origin: %d %v", st, hdr)
	}
	// Answers, errors included, carry the header for the allowed origin only.
	_, hdr, _ = s.Do(t, "POST", sendPath, "203.0.113.9", `{"target":"ANY"}`, map[string]string{"origin": "https://app.example.com"})
	if hdr["Access-Control-Allow-Origin"] != "https://app.example.com" || hdr["Vary"] != "Origin" || hdr["Access-Control-Expose-Headers"] != "Retry-After, Idempotent-Replayed" {
		t.Fatalf("answer headers %v", hdr)
	}
	_, hdr, _ = s.Do(t, "POST", sendPath, "203.0.113.9", `{"target":"ANY"}`, map[string]string{"origin": "https://evil.example"})
	if _, ok := hdr["Access-Control-Allow-Origin"]; ok {
		t.Fatalf("another origin got %v", hdr)
	}
	// Without CORS_ALLOWED_ORIGINS nothing is added.
	// Without CORS_ALLOWED_ORIGINS, an Origin is refused (the Origin rule) and
	// a preflight without one gets no CORS headers.
	plain := apptest.New(t, nil)
	st, hdr, _ = plain.Do(t, "OPTIONS", sendPath, "203.0.113.9", "", allowed)
	if st != 403 || hdr["Access-Control-Allow-Origin"] != "" {
		t.Fatalf("no CORS configured: %d %v", st, hdr)
	}
	st, hdr, _ = plain.Do(t, "OPTIONS", sendPath, "203.0.113.9", "", map[string]string{"access-control-request-method": "POST"})
	if st != 204 || hdr["Access-Control-Allow-Origin"] != "" {
		t.Fatalf("no CORS configured, no Origin: %d %v", st, hdr)
	}
	if st, _, _ := s.Do(t, "OPTIONS", "/auth/v1/nope", "203.0.113.9", "", allowed); st != 404 {
		t.Fatalf("preflight of an unknown route: %d", st)
	}
}

// TestTooManyAttemptsCarriesRetryAfter: too_many_attempts is a 429 too, and
// says when the target's cooldown lets a new code be sent.
func TestTooManyAttemptsCarriesRetryAfter(t *testing.T) {
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
}

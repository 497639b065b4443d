package httpapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/verifykit/verifykit/internal/apptest"
	"github.com/verifykit/verifykit/internal/httpapi"
	"github.com/verifykit/verifykit/internal/verification"
)

// TestOriginRule: a request carrying an Origin that is not listed is refused
// with origin_not_allowed before anything else (body errors included), and
// reaches no service, the outbox included; no Origin works as before.
func TestOriginRule(t *testing.T) {
	const app = "https://app.example.com"
	valid := `{"target":"ANY","email":"a@b.c"}`
	tests := []struct {
		name         string
		allowed      string // the listed origins, comma-separated, as CORS_ALLOWED_ORIGINS
		method, path string
		origin       *string
		body         string
		wantStatus   int
		wantError    string
	}{
		{"no Origin", app, "POST", sendPath, nil, valid, 200, ""},
		{"listed Origin", app, "POST", sendPath, ptr(app), valid, 200, ""},
		{"foreign Origin", app, "POST", sendPath, ptr("https://evil.example"), valid, 403, "origin_not_allowed"},
		{"foreign Origin, body error", app, "POST", sendPath, ptr("https://evil.example"), `{"target":`, 403, "origin_not_allowed"},
		{"foreign Origin, field error", app, "POST", sendPath, ptr("https://evil.example"), `{"target":"ANY","email":""}`, 403, "origin_not_allowed"},
		{"foreign Origin, oversized body", app, "POST", sendPath, ptr("https://evil.example"), `{"pad":"` + strings.Repeat("x", 9000) + `"}`, 403, "origin_not_allowed"},
		{"null Origin, not listed", app, "POST", sendPath, ptr("null"), valid, 403, "origin_not_allowed"},
		{"null Origin, listed", app + ",null", "POST", sendPath, ptr("null"), valid, 200, ""},
		{"null listed, foreign Origin", app + ",null", "POST", sendPath, ptr("https://evil.example"), valid, 403, "origin_not_allowed"},
		{"empty Origin", app, "POST", sendPath, ptr(""), valid, 403, "origin_not_allowed"},
		{"other case", app, "POST", sendPath, ptr("https://APP.example.com"), valid, 403, "origin_not_allowed"},
		{"trailing slash", app, "POST", sendPath, ptr(app + "/"), valid, 403, "origin_not_allowed"},
		{"other port", app, "POST", sendPath, ptr(app + ":8443"), valid, 403, "origin_not_allowed"},
		{"other scheme", app, "POST", sendPath, ptr("http://app.example.com"), valid, 403, "origin_not_allowed"},
		{"nothing listed", "", "POST", sendPath, ptr(app), valid, 403, "origin_not_allowed"},
		{"star allows any", "*", "POST", sendPath, ptr("https://evil.example"), valid, 200, ""},
		{"verify", app, "POST", "/auth/v1/verification/verify", ptr("https://evil.example"), `{}`, 403, "origin_not_allowed"},
		{"captcha data", app, "POST", "/auth/v1/captcha/data", ptr("https://evil.example"), `{}`, 403, "origin_not_allowed"},
		{"captcha verify", app, "POST", "/auth/v1/captcha/data/verify", ptr("https://evil.example"), `{}`, 403, "origin_not_allowed"},
		{"dev outbox", app, "GET", "/dev/outbox", ptr("https://evil.example"), ``, 403, "origin_not_allowed"},
		{"unknown route", app, "POST", "/auth/v1/nope", ptr("https://evil.example"), valid, 403, "origin_not_allowed"},
		{"wrong method", app, "GET", sendPath, ptr("https://evil.example"), ``, 403, "origin_not_allowed"},
		{"preflight", app, "OPTIONS", sendPath, ptr("https://evil.example"), ``, 403, "origin_not_allowed"},
		{"JWKS is public", app, "GET", "/auth/v1/.well-known/jwks.json", ptr("https://evil.example"), ``, 200, ""},
		{"the OpenAPI document is public", app, "GET", "/auth/v1/openapi.json", ptr("https://evil.example"), ``, 200, ""},
		{"JWKS path, other method", app, "POST", "/auth/v1/.well-known/jwks.json", ptr("https://evil.example"), `{}`, 403, "origin_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var origins []string
			if tt.allowed != "" {
				origins = strings.Split(tt.allowed, ",")
			}
			sends := 0
			v := &fakeVerifications{}
			if tt.wantError == "" && tt.path == sendPath {
				v.send = func(req verification.SendRequest) (verification.SendResult, verification.Address, error) {
					sends++
					return accept(req)
				}
			}
			// Local mode's outbox, which no refused request may read.
			outbox := func() any {
				t.Error("the outbox was read")
				return map[string]any{}
			}
			h, log := fakeHandlerWith(t, v, nil, httpapi.Options{CORS: httpapi.NewCORS(origins), DevOutbox: outbox})
			hdr := map[string]string{"content-type": "text/plain;charset=UTF-8"}
			if tt.origin != nil {
				hdr["origin"] = *tt.origin
			}
			st, rh, body := call(t, h, tt.method, tt.path, "203.0.113.9", tt.body, hdr, nil)
			if st != tt.wantStatus {
				t.Fatalf("status %d, want %d (%v)", st, tt.wantStatus, body)
			}
			if tt.wantError == "" {
				if tt.path == sendPath && sends != 1 {
					t.Fatalf("the service got %d sends, want 1", sends)
				}
				return
			}
			checkEnvelope(t, st, rh, body, tt.wantError)
			if body["error_code"] != 4030.0 {
				t.Errorf("error_code %v, want 4030", body["error_code"])
			}
			for k := range rh {
				if strings.HasPrefix(k, "Access-Control-") {
					t.Errorf("refusal carries %s", k)
				}
			}
			if keys := logValues(t, log.String(), "ip_key"); len(keys) != 1 || keys[0] != "203.0.113.9" {
				t.Errorf("logged IP keys %v, want the refusal's", keys)
			}
			if errs := logValues(t, log.String(), "error"); len(errs) != 1 || errs[0] != "origin_not_allowed" {
				t.Errorf("logged errors %v, want origin_not_allowed: %s", errs, log)
			}
			// The refusal reached no service (every fake is unset); a send
			// without an Origin is then served as before.
			v.send = accept
			if st, _, b := call(t, h, "POST", sendPath, "203.0.113.9", valid, nil, nil); st != 200 {
				t.Fatalf("send after the refusal: %d %v", st, b)
			}
		})
	}
}

func ptr(s string) *string { return &s }

// TestOriginRuleLambdaEvents: the rule holds for REST (payload v1) and HTTP
// API (payload v2) events, with the text/plain body a no-cors fetch sends: a
// foreign origin reaches no service, a listed one is served and told so.
func TestOriginRuleLambdaEvents(t *testing.T) {
	body := `{"target":"ANY","email":"a@b.c"}`
	v1 := func(origin string) events.APIGatewayProxyRequest {
		return events.APIGatewayProxyRequest{
			Resource: sendPath, Path: "/prod" + sendPath, HTTPMethod: "POST",
			Headers:           map[string]string{"Origin": origin, "Content-Type": "text/plain;charset=UTF-8"},
			MultiValueHeaders: map[string][]string{"Origin": {origin}, "Content-Type": {"text/plain;charset=UTF-8"}},
			Body:              body,
			RequestContext: events.APIGatewayProxyRequestContext{
				RequestID: "req-v1", Stage: "prod",
				Identity: events.APIGatewayRequestIdentity{SourceIP: "198.51.100.7"},
			},
		}
	}
	v2 := func(origin string) events.APIGatewayV2HTTPRequest {
		return events.APIGatewayV2HTTPRequest{
			Version: "2.0", RouteKey: "POST " + sendPath, RawPath: sendPath,
			Headers: map[string]string{"origin": origin, "content-type": "text/plain;charset=UTF-8"},
			Body:    body,
			RequestContext: events.APIGatewayV2HTTPRequestContext{
				RequestID: "req-v2", Stage: "$default",
				HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: sendPath, SourceIP: "198.51.100.8"},
			},
		}
	}
	for _, tc := range []struct {
		kind, ip string
		event    func(origin string) any
	}{
		{"v1", "198.51.100.7", func(o string) any { return v1(o) }},
		{"v2", "198.51.100.8", func(o string) any { return v2(o) }},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			v := &fakeVerifications{} // the foreign origin reaches no service
			h, _ := fakeHandlerWith(t, v, nil, httpapi.Options{CORS: httpapi.NewCORS([]string{"https://app.example.com"})})
			st, hdr, b := serveLambda(t, h, tc.event("https://evil.example"))
			if st != 403 || !strings.Contains(b, `"error":"origin_not_allowed"`) || hdr["Access-Control-Allow-Origin"] != "" {
				t.Fatalf("foreign origin: %d %s %v", st, b, hdr)
			}
			var got []verification.SendRequest
			v.send = func(req verification.SendRequest) (verification.SendResult, verification.Address, error) {
				got = append(got, req)
				return accept(req)
			}
			st, hdr, b = serveLambda(t, h, tc.event("https://app.example.com"))
			if st != 200 || hdr["Access-Control-Allow-Origin"] != "https://app.example.com" {
				t.Fatalf("listed origin: %d %s %v", st, b, hdr)
			}
			if len(got) != 1 || handed(got[0]) != `target="ANY" email="a@b.c"` || got[0].IP != tc.ip {
				t.Fatalf("the service was handed %+v, want the body from %s", got, tc.ip)
			}
		})
	}
}

// TestLocalServerOwnOrigins: in local mode the server's own origins are
// always allowed (its demo page calls it), and only those.
func TestLocalServerOwnOrigins(t *testing.T) {
	tests := []struct {
		addr    string
		allowed []string
		refused []string
	}{
		{"127.0.0.1:3999", []string{"http://127.0.0.1:3999", "http://localhost:3999"}, []string{"http://localhost:4000", "https://127.0.0.1:3999", "http://[::1]:3999"}},
		{"[::1]:3999", []string{"http://[::1]:3999", "http://localhost:3999"}, []string{"http://127.0.0.1:3999"}},
		{"localhost:3999", []string{"http://localhost:3999"}, []string{"http://127.0.0.1:3999", "http://localhost"}},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			s := apptest.New(t, map[string]string{"ADDR": tt.addr, "CAPTCHA_IP_THRESHOLD": "0", "CAPTCHA_TARGET_THRESHOLD": "0"})
			for i, o := range tt.allowed {
				body := `{"target":"ANY","email":"own` + string(rune('a'+i)) + `@b.c"}`
				if st, _, b := s.Do(t, "POST", sendPath, "203.0.113.9", body, map[string]string{"origin": o}); st != 200 {
					t.Errorf("own origin %s: %d %v", o, st, b)
				}
			}
			for _, o := range tt.refused {
				if st, _, b := s.Do(t, "POST", sendPath, "203.0.113.9", `{"target":"ANY","email":"x@b.c"}`, map[string]string{"origin": o}); st != 403 {
					t.Errorf("origin %s: %d %v, want 403", o, st, b)
				}
			}
		})
	}
}

// TestOriginRuleNetHTTP sends what a page on another site can make its
// visitors' browsers send, fetch(url, {method: "POST", mode: "no-cors",
// body}), to the local server: it is refused and reaches no service.
func TestOriginRuleNetHTTP(t *testing.T) {
	h, _ := fakeHandlerWith(t, nil, nil, httpapi.Options{CORS: httpapi.NewCORS(nil)}) // send unset: reaching it fails the test
	srv := newServer(t, h)
	req, _ := http.NewRequest("POST", srv+sendPath, strings.NewReader(`{"target":"ANY","phone_number":"+86 13800138000"}`))
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(b), `"error":"origin_not_allowed"`) {
		t.Fatalf("no-cors POST from another site: %d %s", resp.StatusCode, b)
	}
}

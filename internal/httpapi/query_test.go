package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/verifykit/verifykit/internal/apptest"
	"github.com/verifykit/verifykit/internal/httpapi"
	"github.com/verifykit/verifykit/internal/verification"
)

// gated builds a service whose captcha gate closes after one accepted send
// per IP, and spends that send from ip.
func gated(t *testing.T, ip string) *apptest.Service {
	t.Helper()
	s := apptest.New(t, map[string]string{"CAPTCHA_IP_THRESHOLD": "1", "IP_HOURLY_LIMIT": "50"})
	if st, _, b := s.Do(t, "POST", sendPath, ip, `{"target":"ANY","email":"first@example.com"}`, nil); st != 200 {
		t.Fatalf("first send: %d %v", st, b)
	}
	return s
}

// solve gets a captcha from ip, reads its answer from GET /dev/outbox and
// solves it from ip, returning the captcha_token.
func solve(t *testing.T, s *apptest.Service, ip string) string {
	t.Helper()
	st, _, img := s.Do(t, "POST", "/auth/v1/captcha/data", ip, `{}`, nil)
	if st != 200 {
		t.Fatalf("captcha data: %d %v", st, img)
	}
	_, _, outbox := s.Do(t, "GET", "/dev/outbox", ip, "", nil)
	answer := ""
	caps, _ := outbox["captchas"].([]any)
	for _, c := range caps {
		if m, _ := c.(map[string]any); m["token"] == img["token"] {
			answer, _ = m["answer"].(string)
		}
	}
	if answer == "" {
		t.Fatalf("no answer for captcha %v in /dev/outbox", img["token"])
	}
	body, _ := json.Marshal(map[string]any{"token": img["token"], "key": answer})
	st, _, pass := s.Do(t, "POST", "/auth/v1/captcha/data/verify", ip, string(body), nil)
	tok, _ := pass["captcha_token"].(string)
	if st != 200 || tok == "" {
		t.Fatalf("captcha verify: %d %v", st, pass)
	}
	return tok
}

// TestCaptchaTokenQueryReachesTheSend: the CloudBase JS SDK retries a send
// with ?captcha_token=; the parameter must reach the send from every
// transport: REST API events (queryStringParameters and
// multiValueQueryStringParameters), HTTP API events (rawQueryString, or
// queryStringParameters alone) and net/http. Repeated names take the first
// value everywhere. Each case first checks that the same request without the
// token meets the gate, so a pass cannot come from an open gate.
func TestCaptchaTokenQueryReachesTheSend(t *testing.T) {
	const ip = "198.51.100.40"
	body := `{"target":"ANY","email":"second@example.com"}`
	v1 := func(single map[string]string, multi map[string][]string) events.APIGatewayProxyRequest {
		return events.APIGatewayProxyRequest{
			Resource: sendPath, Path: sendPath, HTTPMethod: "POST", Body: body,
			QueryStringParameters: single, MultiValueQueryStringParameters: multi,
			RequestContext: events.APIGatewayProxyRequestContext{RequestID: "q", Stage: "prod", Identity: events.APIGatewayRequestIdentity{SourceIP: ip}},
		}
	}
	v2 := func(raw string, params map[string]string) events.APIGatewayV2HTTPRequest {
		return events.APIGatewayV2HTTPRequest{
			Version: "2.0", RouteKey: "POST " + sendPath, RawPath: sendPath, Body: body,
			RawQueryString: raw, QueryStringParameters: params,
			RequestContext: events.APIGatewayV2HTTPRequestContext{RequestID: "q", Stage: "$default",
				HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: sendPath, SourceIP: ip}},
		}
	}
	tests := []struct {
		name  string
		event func(tok string) any // tok "": the same request without a token
	}{
		{"REST single", func(tok string) any {
			if tok == "" {
				return v1(map[string]string{"client_id": "env"}, map[string][]string{"client_id": {"env"}})
			}
			return v1(map[string]string{"client_id": "env", "captcha_token": tok}, nil)
		}},
		{"REST multi, first value", func(tok string) any {
			if tok == "" {
				return v1(nil, map[string][]string{"client_id": {"env"}})
			}
			// API Gateway's queryStringParameters holds the last value.
			return v1(map[string]string{"captcha_token": "v1.forged"}, map[string][]string{"captcha_token": {tok, "v1.forged"}})
		}},
		{"HTTP API raw, first value", func(tok string) any {
			if tok == "" {
				return v2("client_id=env", map[string]string{"client_id": "env"})
			}
			// queryStringParameters joins repeated values with commas.
			return v2("client_id=env&captcha_token="+tok+"&captcha_token=v1.forged", map[string]string{"client_id": "env", "captcha_token": tok + ",v1.forged"})
		}},
		{"HTTP API params only", func(tok string) any {
			if tok == "" {
				return v2("", nil)
			}
			return v2("", map[string]string{"captcha_token": tok})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := gated(t, ip)
			if st, _, b := serveLambda(t, s.Handler, tt.event("")); st != 428 || !strings.Contains(b, "captcha_required") {
				t.Fatalf("without a token: %d %s, want 428 captcha_required", st, b)
			}
			if st, _, b := serveLambda(t, s.Handler, tt.event(solve(t, s, ip))); st != 200 {
				t.Fatalf("with ?captcha_token=: %d %s, want 200", st, b)
			}
		})
	}

	t.Run("net/http", func(t *testing.T) {
		s := gated(t, "127.0.0.1")
		srv := newServer(t, s.Handler)
		post := func(query string) (int, string) {
			resp, err := http.Post(srv+sendPath+query, "text/plain;charset=UTF-8", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if st, b := post("?client_id=env"); st != 428 {
			t.Fatalf("without a token: %d %s, want 428", st, b)
		}
		if st, b := post("?client_id=env&captcha_token=" + solve(t, s, "127.0.0.1") + "&captcha_token=v1.forged"); st != 200 {
			t.Fatalf("with ?captcha_token=: %d %s, want 200", st, b)
		}
	})
}

// TestCaptchaTokenHeaderAndQuery: the header wins when both are present; an
// empty query value is no token, an empty header a bad one; a bad token in
// the query is refused like one in the header. The service is handed the
// token that wins, and its refusals come out as they are.
func TestCaptchaTokenHeaderAndQuery(t *testing.T) {
	const ip = "198.51.100.41"
	const valid = fakeCaptchaToken // solved from ip
	tests := []struct {
		name       string
		header     map[string]string
		query      map[string]string
		wantToken  *string // what the service is handed
		wantStatus int
		wantError  string
	}{
		{"query alone", nil, map[string]string{"captcha_token": valid}, ptr(valid), 200, ""},
		{"header wins over a bad query", map[string]string{"x-captcha-token": valid}, map[string]string{"captcha_token": "v1.forged"}, ptr(valid), 200, ""},
		{"a bad header wins over a good query", map[string]string{"x-captcha-token": "v1.forged"}, map[string]string{"captcha_token": valid}, ptr("v1.forged"), 403, "captcha_invalid"},
		{"empty header is a bad token", map[string]string{"x-captcha-token": ""}, map[string]string{"captcha_token": valid}, ptr(""), 403, "captcha_invalid"},
		{"empty query is no token", nil, map[string]string{"captcha_token": ""}, nil, 428, "captcha_required"},
		{"forged query token", nil, map[string]string{"captcha_token": "v1.forged"}, ptr("v1.forged"), 403, "captcha_invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *verification.SendRequest
			// A service whose captcha gate is closed for ip: no token is
			// captcha_required, and only the token solved from ip passes.
			v := &fakeVerifications{send: func(req verification.SendRequest) (verification.SendResult, verification.Address, error) {
				got = &req
				switch {
				case req.CaptchaToken == nil:
					return verification.SendResult{}, addressOf(req), verification.ErrCaptchaRequired
				case *req.CaptchaToken != valid || req.IP != ip:
					return verification.SendResult{}, addressOf(req), verification.ErrCaptchaInvalid
				}
				return accept(req)
			}}
			h, _ := fakeHandler(t, v, nil)
			st, hdr, b := call(t, h, "POST", sendPath, ip, `{"target":"ANY","email":"second@example.com"}`, tt.header, tt.query)
			if st != tt.wantStatus || tt.wantError != "" && b["error"] != tt.wantError {
				t.Fatalf("got %d %v, want %d %s", st, b, tt.wantStatus, tt.wantError)
			}
			if tt.wantError != "" {
				checkEnvelope(t, st, hdr, b, tt.wantError)
			}
			if got == nil {
				t.Fatal("the send never reached the service")
			}
			if (got.CaptchaToken == nil) != (tt.wantToken == nil) || got.CaptchaToken != nil && *got.CaptchaToken != *tt.wantToken {
				t.Fatalf("the service was handed the token %v, want %v", got.CaptchaToken, tt.wantToken)
			}
		})
	}
	// An empty query value on an open gate is simply no token.
	v := &fakeVerifications{send: func(req verification.SendRequest) (verification.SendResult, verification.Address, error) {
		if req.CaptchaToken != nil {
			t.Errorf("the service was handed the token %q", *req.CaptchaToken)
		}
		return accept(req)
	}}
	h, _ := fakeHandler(t, v, nil)
	if st, _, b := call(t, h, "POST", sendPath, ip, `{"email":"open@example.com"}`, nil, map[string]string{"captcha_token": ""}); st != 200 {
		t.Fatalf("empty query value, open gate: %d %v", st, b)
	}
}

// TestPreflightAllowsTheSDKHeaders: a preflight from an allowed origin allows
// what the browser asks for when it is a list of header names, and otherwise
// at least the API's own headers and those the CloudBase JS SDK sends.
func TestPreflightAllowsTheSDKHeaders(t *testing.T) {
	const origin = "https://app.example.com"
	h, _ := fakeHandlerWith(t, nil, nil, httpapi.Options{CORS: httpapi.NewCORS([]string{origin})})
	sdk := []string{"content-type", "x-captcha-token", "idempotency-key", "x-request-id", "x-device-id", "x-sdk-version", "accept-language"}
	many := strings.Repeat("x-a,", 40) + "x-b"
	tests := []struct {
		name, requested, want string
	}{
		{"none asked: the default list", "", strings.Join(sdk, ", ")},
		{"the SDK's headers, echoed lower-case", "Accept-Language,X-SDK-Version,content-type,x-device-id,x-request-id", "accept-language, x-sdk-version, content-type, x-device-id, x-request-id"},
		{"an unknown header name is echoed too", "x-custom, undefined", "x-custom, undefined"},
		{"not a list of names: the default list", "x-a, x b", strings.Join(sdk, ", ")},
		{"an empty element: the default list", "x-a,,x-b", strings.Join(sdk, ", ")},
		{"a line break: the default list", "x-a\r\nset-cookie: x", strings.Join(sdk, ", ")},
		{"too many names: the default list", many, strings.Join(sdk, ", ")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"origin": origin, "access-control-request-method": "POST"}
			if tt.requested != "" {
				hdr["access-control-request-headers"] = tt.requested
			}
			st, rh, _ := call(t, h, "OPTIONS", sendPath, "203.0.113.9", "", hdr, nil)
			if st != 204 || rh["Access-Control-Allow-Headers"] != tt.want {
				t.Fatalf("got %d, Access-Control-Allow-Headers %q, want %q", st, rh["Access-Control-Allow-Headers"], tt.want)
			}
			if !strings.Contains(rh["Vary"], "Access-Control-Request-Headers") || !strings.Contains(rh["Vary"], "Origin") {
				t.Fatalf("Vary %q, want Origin and Access-Control-Request-Headers", rh["Vary"])
			}
		})
	}
	// Another origin's preflight is refused by the Origin rule, with no CORS
	// headers, so the browser never sends the request.
	st, rh, _ := call(t, h, "OPTIONS", sendPath, "203.0.113.9", "", map[string]string{"origin": "https://evil.example", "access-control-request-headers": "x-sdk-version"}, nil)
	if _, ok := rh["Access-Control-Allow-Headers"]; st != 403 || ok {
		t.Fatalf("another origin: %d %v", st, rh)
	}
}

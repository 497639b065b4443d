package openapitest_test

import (
	"strings"
	"testing"

	"github.com/verifykit/verifykit/internal/openapitest"
)

const (
	sendPath = "/auth/v1/verification"
	jsonCT   = "application/json; charset=utf-8"
)

// TestCheck holds the checker itself to account: documented exchanges pass,
// and each kind of drift from the contract is caught.
func TestCheck(t *testing.T) {
	okSend := openapitest.Exchange{
		Method: "POST", Target: sendPath, RequestBody: []byte(`{"target":"ANY","email":"a@b.c"}`),
		Status: 200, ResponseHeader: map[string]string{"Content-Type": jsonCT, "Cache-Control": "no-store"},
		ResponseBody: []byte(`{"verification_id":"v1.x","expires_in":600,"is_user":false}`),
	}
	with := func(f func(x *openapitest.Exchange)) openapitest.Exchange {
		x := okSend
		x.ResponseHeader = map[string]string{}
		for k, v := range okSend.ResponseHeader {
			x.ResponseHeader[k] = v
		}
		f(&x)
		return x
	}
	limited := func(x *openapitest.Exchange) {
		x.Status = 429
		x.ResponseHeader["Retry-After"] = "42"
		x.ResponseBody = []byte(`{"error":"rate_limit_exceeded","error_code":4029,"error_description":"wait","retry_after":42}`)
	}
	tests := []struct {
		name    string
		x       openapitest.Exchange
		wantErr string // "" = conforms
	}{
		{"documented send", okSend, ""},
		{"rate limited with Retry-After", with(limited), ""},
		{"captcha token header and query", with(func(x *openapitest.Exchange) {
			x.Target = sendPath + "?captcha_token=abc"
			x.RequestHeader = map[string]string{"x-captcha-token": "abc", "origin": "http://127.0.0.1:3000"}
		}), ""},
		{"undocumented field", with(func(x *openapitest.Exchange) {
			x.ResponseBody = []byte(`{"verification_id":"v1.x","expires_in":600,"is_user":false,"code":"123456"}`)
		}), "additional properties 'code' not allowed"},
		{"missing field", with(func(x *openapitest.Exchange) {
			x.ResponseBody = []byte(`{"verification_id":"v1.x","expires_in":600}`)
		}), "missing property 'is_user'"},
		{"undocumented status", with(func(x *openapitest.Exchange) {
			x.Status = 418
		}), "status is not supported"},
		{"429 without Retry-After", with(func(x *openapitest.Exchange) {
			limited(x)
			delete(x.ResponseHeader, "Retry-After")
		}), "Retry-After"},
		{"error name of another status", with(func(x *openapitest.Exchange) {
			x.Status = 400
			x.ResponseBody = []byte(`{"error":"captcha_required","error_code":4028,"error_description":"x"}`)
		}), `"/error": value is not one of the allowed values`},
		{"unknown error name", with(func(x *openapitest.Exchange) {
			x.Status = 400
			x.ResponseBody = []byte(`{"error":"bad","error_code":4000,"error_description":"x"}`)
		}), `"/error": value is not one of the allowed values`},
		{"refused request accepted", with(func(x *openapitest.Exchange) {
			x.RequestBody = []byte(`{"target":1,"email":"a@b.c"}`)
		}), "refuses this request"},
		{"refused request refused", with(func(x *openapitest.Exchange) {
			x.RequestBody = []byte(`{"target":1,"email":"a@b.c"}`)
			x.Status = 400
			x.ResponseBody = []byte(`{"error":"invalid_request","error_code":4000,"error_description":"x"}`)
		}), ""},
		{"unknown path answered", openapitest.Exchange{Method: "GET", Target: "/nope", Status: 200, ResponseBody: []byte(`{}`)}, "not in the contract"},
		{"unknown path refused", openapitest.Exchange{Method: "GET", Target: "/nope", Status: 404,
			ResponseBody: []byte(`{"error":"not_found","error_code":4040,"error_description":"No such route"}`)}, ""},
		{"wrong method without Allow", openapitest.Exchange{Method: "GET", Target: sendPath, Status: 405,
			ResponseBody: []byte(`{"error":"method_not_allowed","error_code":4050,"error_description":"x"}`)}, "Allow"},
	}
	c, err := openapitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Check(tt.x)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got %v, want no departure", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("got no departure, want one mentioning %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("got %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

package httpapi

import (
	"net/http"
	"strconv"
	"strings"
)

// CORS lets browser apps on the listed origins call the API, and is the list
// the Origin rule checks: a request carrying any other Origin is refused
// before it is read (see Handler.Serve). CORS alone could not stop a page on
// another site: a "no-cors" text/plain POST needs no preflight, so the
// browser sends it and only hides the answer, after the code went out.
type CORS struct {
	any     bool
	origins map[string]bool
}

// NewCORS allows the given origins ("https://app.example.com"), compared
// byte for byte with the Origin header as the browser sends it ("null" only
// when listed). "*" allows every origin, which also lets any site make its
// visitors' browsers send codes: the README says so where it documents
// CORS_ALLOWED_ORIGINS. No origins: every request with an Origin is refused.
func NewCORS(origins []string) *CORS {
	c := &CORS{origins: map[string]bool{}}
	for _, o := range origins {
		if o == "*" {
			c.any = true
		}
		c.origins[o] = true
	}
	return c
}

// preflightMaxAge lets a browser cache a preflight for 10 minutes.
const preflightMaxAge = 600

// preflight answers an OPTIONS request on a known route; Serve adds the
// origin's headers (decorate) as to every answer.
func (c *CORS) preflight(r *Request, method string) Response {
	resp := Response{Status: http.StatusNoContent, Header: map[string]string{"Allow": method + ", OPTIONS"}}
	if origin := r.Header["origin"]; origin != "" && c.allows(origin, true) {
		resp.Header["Access-Control-Allow-Methods"] = method
		resp.Header["Access-Control-Allow-Headers"] = allowHeaders(r.Header["access-control-request-headers"])
		resp.Header["Access-Control-Max-Age"] = strconv.Itoa(preflightMaxAge)
		// The answer depends on the requested headers too, so a cache must
		// not hand it to a preflight that asked for others.
		resp.Header["Vary"] = "Origin, Access-Control-Request-Headers"
	}
	return resp
}

// allows reports whether a request with this Origin header may be served.
// No Origin at all (servers, mobile apps, curl) is always allowed: only
// browsers send one, and they cannot leave it out. A nil CORS allows no
// origin.
func (c *CORS) allows(origin string, present bool) bool {
	if !present {
		return true
	}
	return c != nil && (c.any || c.origins[origin])
}

// defaultAllowHeaders are the request headers a browser app sends: the
// API's own (content-type, x-captcha-token, idempotency-key) and those the
// CloudBase JS SDK adds to every call (x-request-id, x-device-id,
// x-sdk-version, and Accept-Language, its i18n header).
const defaultAllowHeaders = "content-type, x-captcha-token, idempotency-key, x-request-id, x-device-id, x-sdk-version, accept-language"

// Bounds on an echoed Access-Control-Request-Headers: a browser lists the
// few non-safelisted headers of one request; anything longer is not a
// browser's and gets the default list.
const (
	maxRequestHeaders   = 32
	maxRequestHeaderLen = 1024
)

// allowHeaders answers a preflight's Access-Control-Request-Headers. The
// API reads no credentials (no cookies, no Authorization), so letting a page
// send a header gives it nothing it could not do from a server: the list is
// echoed, so that a client's own headers (an SDK adds more with each
// release) do not break it. It is echoed only when it is what a browser
// writes, a short comma-separated list of header-name tokens, lower-cased;
// otherwise, or when absent, the answer is the default list.
func allowHeaders(requested string) string {
	if requested == "" || len(requested) > maxRequestHeaderLen {
		return defaultAllowHeaders
	}
	names := strings.Split(requested, ",")
	if len(names) > maxRequestHeaders {
		return defaultAllowHeaders
	}
	for i, n := range names {
		n = strings.TrimSpace(n)
		if !isToken(n) {
			return defaultAllowHeaders
		}
		names[i] = strings.ToLower(n)
	}
	return strings.Join(names, ", ")
}

// isToken reports whether s is an HTTP token (RFC 9110 section 5.6.2), the
// syntax of a header name: nothing that could end the header line or smuggle
// another value in.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// decorate adds the CORS headers to resp when the request's origin is
// allowed.
func (c *CORS) decorate(r *Request, resp *Response) {
	origin := r.Header["origin"]
	if origin == "" || !c.allows(origin, true) {
		return
	}
	resp.Header["Access-Control-Allow-Origin"] = origin
	if resp.Header["Vary"] == "" { // a preflight has set its own, Origin included
		resp.Header["Vary"] = "Origin"
	}
	// A browser app reads the wait of a 429 from the header as well.
	resp.Header["Access-Control-Expose-Headers"] = "Retry-After, Idempotent-Replayed"
}

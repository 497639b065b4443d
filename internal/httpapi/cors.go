package httpapi

import (
	"net/http"
	"strconv"
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

// preflight answers an OPTIONS request on a known route.
func (c *CORS) preflight(r *Request, method string) Response {
	resp := Response{Status: http.StatusNoContent, Header: map[string]string{"Allow": method + ", OPTIONS"}}
	if c.decorate(r, &resp) {
		resp.Header["Access-Control-Allow-Methods"] = method
		resp.Header["Access-Control-Allow-Headers"] = "content-type, x-captcha-token"
		resp.Header["Access-Control-Max-Age"] = strconv.Itoa(preflightMaxAge)
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

// decorate adds the CORS headers to resp when the request's origin is
// allowed, and reports whether it did.
func (c *CORS) decorate(r *Request, resp *Response) bool {
	origin := r.Header["origin"]
	if c == nil || origin == "" || !(c.any || c.origins[origin]) {
		return false
	}
	resp.Header["Access-Control-Allow-Origin"] = origin
	resp.Header["Vary"] = "Origin"
	// A browser app reads the wait of a 429 from the header as well.
	resp.Header["Access-Control-Expose-Headers"] = "Retry-After"
	return true
}

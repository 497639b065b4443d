package httpapi

import (
	"net/http"
	"strconv"
)

// CORS lets browser apps on the listed origins call the API. The API uses no
// cookies or credentials, so a browser only needs to be told which origins
// may read the answers; any other origin still gets an answer, which its
// browser hides from it.
type CORS struct {
	any     bool
	origins map[string]bool
}

// NewCORS allows the given origins ("https://app.example.com"); "*" allows
// every origin. No origins: no CORS headers at all.
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

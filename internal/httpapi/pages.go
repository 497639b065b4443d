package httpapi

import (
	"context"

	"github.com/verifykit/verifykit/api"
)

// Page is a static file of the local server: the demo page and its scripts.
type Page struct {
	ContentType string
	Body        []byte
}

// pageCSP lets the demo page run only its own scripts, call only its own
// origin, and show the captcha image (a data: URL); nothing can frame it.
const pageCSP = "default-src 'none'; script-src 'self'; connect-src 'self'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// hidden reports whether path is a local-mode route this handler does not
// serve (in Lambda, or a local server without the outbox sender): it is
// then answered not_found like any unknown path.
func (h *Handler) hidden(path string) bool {
	switch path {
	case "/dev/outbox":
		return h.outbox == nil
	case "/", "/demo.js", "/verifykit.js":
		_, ok := h.pages[path]
		return !ok
	}
	return false
}

func (h *Handler) page(_ context.Context, r *Request, _ *logEntry) Response {
	p := h.pages[r.Path]
	return Response{Status: 200, Body: p.Body, Header: map[string]string{
		"Content-Type":            p.ContentType,
		"Cache-Control":           "no-store",
		"Content-Security-Policy": pageCSP,
		"X-Content-Type-Options":  "nosniff",
	}}
}

// openAPI serves the contract, api/openapi.yaml, as JSON (in Lambda too).
func (h *Handler) openAPI(_ context.Context, _ *Request, _ *logEntry) Response {
	return Response{Status: 200, Body: api.JSON, Header: map[string]string{
		"Content-Type":  "application/json; charset=utf-8",
		"Cache-Control": "public, max-age=300",
	}}
}

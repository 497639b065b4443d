package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
)

// ServeHTTP serves the API over net/http (local mode). The source IP is the
// TCP peer; X-Forwarded-For is read only with trusted proxies (ClientIP).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req := &Request{
		Method:    r.Method,
		Path:      r.URL.Path,
		Header:    make(map[string]string, len(r.Header)),
		Query:     firstValues(r.URL.RawQuery),
		RequestID: newRequestID(),
	}
	req.SourceIP, _, _ = net.SplitHostPort(r.RemoteAddr)
	for k, vs := range r.Header {
		if len(vs) > 0 {
			req.Header[strings.ToLower(k)] = vs[0]
		}
	}
	// Every X-Forwarded-For line counts, in order: it is read from the right.
	if vs := r.Header.Values("X-Forwarded-For"); len(vs) > 1 {
		req.Header["x-forwarded-for"] = strings.Join(vs, ",")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil && !errors.Is(err, io.EOF) {
		body = nil
	}
	req.Body = body
	resp := h.Serve(r.Context(), req)
	for k, v := range resp.Header {
		w.Header().Set(k, v)
	}
	w.Header().Set("X-Request-Id", req.RequestID)
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

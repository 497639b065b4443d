// Package openapitest holds the HTTP tests to the contract, api/openapi.yaml:
// every exchange a test makes is checked against it, so an undocumented
// route, status, header or field fails the test that produced it.
//
// A request the contract refuses (a body that is not an object, a field of
// the wrong type) must be refused by the service too, with a 4xx error;
// every answer must be documented for its route and status, with its body
// and required headers. An unknown path must be answered not_found and a
// wrong method method_not_allowed, both in the documented envelope.
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/verifykit/verifykit/api"
)

// Exchange is one request and its answer, whatever transport carried them.
type Exchange struct {
	Method string
	// Target is the path with an optional query ("/auth/v1/verification?captcha_token=x").
	Target         string
	RequestHeader  map[string]string
	RequestBody    []byte
	Status         int
	ResponseHeader map[string]string
	ResponseBody   []byte
}

// Contract is the loaded api/openapi.yaml with its router.
type Contract struct {
	doc    *openapi3.T
	router routers.Router
}

// host is where the validator pretends requests go: routes are matched by
// path only, whichever server (local, a stage of API Gateway) answered.
const host = "http://verifykit.test"

var (
	loadOnce sync.Once
	loaded   *Contract
	loadErr  error
)

// Load parses and checks api/openapi.yaml once per test binary.
func Load() (*Contract, error) {
	loadOnce.Do(func() { loaded, loadErr = load(api.YAML) })
	return loaded, loadErr
}

func load(yaml []byte) (*Contract, error) {
	l := openapi3.NewLoader()
	doc, err := l.LoadFromData(yaml)
	if err != nil {
		return nil, fmt.Errorf("api/openapi.yaml: %w", err)
	}
	if err := doc.Validate(l.Context); err != nil {
		return nil, fmt.Errorf("api/openapi.yaml is not valid OpenAPI: %w", err)
	}
	doc.Servers = openapi3.Servers{{URL: host}}
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("api/openapi.yaml routes: %w", err)
	}
	return &Contract{doc: doc, router: r}, nil
}

// Doc is the parsed contract.
func (c *Contract) Doc() *openapi3.T { return c.doc }

// Check reports how the exchange departs from the contract, or nil.
func (c *Contract) Check(x Exchange) error {
	ctx := context.Background()
	req, err := http.NewRequestWithContext(ctx, x.Method, host+x.Target, bytes.NewReader(x.RequestBody))
	if err != nil {
		return fmt.Errorf("%s %s: %w", x.Method, x.Target, err)
	}
	for k, v := range x.RequestHeader {
		req.Header.Set(k, v)
	}
	// The service does not look at Content-Type (the CloudBase SDK sends
	// JSON as text/plain): read every body as the JSON it must be.
	if len(x.RequestBody) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	route, params, err := c.router.FindRoute(req)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		return c.checkUnrouted(x, http.StatusNotFound, "NotFound")
	case errors.Is(err, routers.ErrMethodNotAllowed):
		return c.checkUnrouted(x, http.StatusMethodNotAllowed, "MethodNotAllowed")
	case err != nil:
		return fmt.Errorf("%s %s: %w", x.Method, x.Target, err)
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true,
		MultiError:            true,
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if reqErr := openapi3filter.ValidateRequest(ctx, in); reqErr != nil {
		// A request outside the contract must be refused, in the envelope.
		if x.Status != http.StatusBadRequest && x.Status != http.StatusForbidden && x.Status != http.StatusRequestEntityTooLarge {
			return fmt.Errorf("%s %s: the contract refuses this request (%v) but the service answered %d", x.Method, x.Target, reqErr, x.Status)
		}
	}
	hdr := http.Header{}
	for k, v := range x.ResponseHeader {
		hdr.Set(k, v)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 x.Status,
		Header:                 hdr,
		Body:                   io.NopCloser(bytes.NewReader(x.ResponseBody)),
		Options:                opts,
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Errorf("%s %s answered %d %s: %w", x.Method, x.Target, x.Status, trim(x.ResponseBody), err)
	}
	return nil
}

// checkUnrouted checks the answer to a path or method the contract does not
// have against the named response of components.responses.
func (c *Contract) checkUnrouted(x Exchange, status int, name string) error {
	// The Origin rule comes before routing (info.description): a foreign
	// Origin is refused on unknown paths and methods too.
	if headerValue(x.RequestHeader, "Origin") != "" && x.Status == http.StatusForbidden {
		status, name = http.StatusForbidden, "OriginNotAllowed"
	}
	if x.Status != status {
		return fmt.Errorf("%s %s: not in the contract, answered %d, want %d", x.Method, x.Target, x.Status, status)
	}
	resp := c.doc.Components.Responses[name].Value
	for h, ref := range resp.Headers {
		if ref.Value.Required && headerValue(x.ResponseHeader, h) == "" {
			return fmt.Errorf("%s %s answered %d without the %s header", x.Method, x.Target, x.Status, h)
		}
	}
	var body any
	if err := json.Unmarshal(x.ResponseBody, &body); err != nil {
		return fmt.Errorf("%s %s answered %d with a body that is not JSON: %w", x.Method, x.Target, x.Status, err)
	}
	schema := resp.Content.Get("application/json").Schema.Value
	if err := schema.VisitJSON(body, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors()); err != nil {
		return fmt.Errorf("%s %s answered %d %s: %w", x.Method, x.Target, x.Status, trim(x.ResponseBody), err)
	}
	return nil
}

func headerValue(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

func trim(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// TB is the part of testing.TB the helpers use.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Require checks x and fails t when it departs from the contract.
func Require(t TB, x Exchange) {
	t.Helper()
	c, err := Load()
	if err != nil {
		t.Fatalf("%v", err)
		return
	}
	if err := c.Check(x); err != nil {
		t.Errorf("contract (api/openapi.yaml): %v", err)
	}
}

// Middleware wraps an http.Handler so that every exchange it serves is
// checked against the contract; a departure fails t.
func Middleware(t TB, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		x := Exchange{
			Method:         r.Method,
			Target:         r.URL.RequestURI(),
			RequestHeader:  flatten(r.Header),
			RequestBody:    body,
			Status:         rec.status,
			ResponseHeader: flatten(w.Header()),
			ResponseBody:   rec.body.Bytes(),
		}
		Require(t, x)
	})
}

// Target joins a path and a query into an Exchange target.
func Target(path string, query url.Values) string {
	if len(query) == 0 {
		return path
	}
	return path + "?" + query.Encode()
}

func flatten(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, vs := range h {
		if len(vs) > 0 {
			out[k] = vs[0]
		}
	}
	return out
}

type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

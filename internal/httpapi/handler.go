// Package httpapi adapts the service to HTTP: API Gateway REST (payload v1),
// HTTP API and function URL (payload v2) events, and net/http for local mode.
// It routes, decodes requests strictly, renders every answer (errors through
// one table and one writer), and writes one log line and one metrics line per
// request. It knows no business rule.
//
// The answers of the two hot routes (send, verify) are written by hand
// (appendJSON) rather than by json.Marshal. That serves internal/app's
// BenchmarkSendEmail and BenchmarkVerify and buys little: one allocation and
// about 32 bytes per request (61 instead of 62 allocations for a send); the
// time it saves was within the noise of a shared 2-core machine.
package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/verifykit/verifykit/internal/captcha"
	"github.com/verifykit/verifykit/internal/logging"
	"github.com/verifykit/verifykit/internal/verification"
)

// MaxBody is the largest request body accepted: 8 KiB.
const MaxBody = 8 << 10

// Request is an HTTP request whatever transport brought it.
type Request struct {
	Method    string
	Path      string            // route path, without any stage prefix
	Header    map[string]string // keys in lower case
	Query     map[string]string // the first value of each query parameter; nil when there is none
	Body      []byte
	SourceIP  string // as the platform observed it; never a client header
	RequestID string
	// IPKey is set by Serve: the key every per-IP limit and gate counts this
	// request under (see ClientIP). Routes hand it to the domain as the IP.
	IPKey string
}

// Response is an HTTP response whatever transport takes it back.
type Response struct {
	Status int
	Header map[string]string
	Body   []byte
}

// Verifications sends and verifies codes: package verification's Service,
// or a fake in this package's tests.
type Verifications interface {
	Send(ctx context.Context, req verification.SendRequest) (verification.SendResult, verification.Address, error)
	Verify(ctx context.Context, req verification.VerifyRequest) (verification.VerifyResult, error)
	// RememberAnswer keeps the answer of a send with an Idempotency-Key.
	RememberAnswer(ctx context.Context, t *verification.IdempotencyTicket, a verification.Answer) error
}

// Captchas issues and solves image captchas.
type Captchas interface {
	New(ctx context.Context, ip string) (captcha.Image, error)
	Solve(ctx context.Context, token, key, ip string) (captcha.Pass, error)
}

// Handler serves every route of the API. Build it with New.
type Handler struct {
	verifications Verifications
	captchas      Captchas
	jwksDoc       []byte
	outbox        func() any
	pages         map[string]Page
	cors          *CORS
	ip            ClientIP
	log           *slog.Logger
	metrics       *logging.Metrics
	now           func() time.Time
}

// Options are the handler's settings. JWKS is required; each of the others
// may be left zero.
type Options struct {
	// JWKS is the document served at /auth/v1/.well-known/jwks.json.
	JWKS []byte
	// DevOutbox, when set (local mode with the outbox sender only), serves
	// GET /dev/outbox with what it returns.
	DevOutbox func() any
	// Pages, when set (local mode only), serves the demo page at / and its
	// scripts, by path.
	Pages map[string]Page
	// CORS lists the browser origins allowed to call the API: it answers
	// their preflights and lets them read the answers. A request with any
	// other Origin is refused; nil refuses every Origin.
	CORS *CORS
	// IP turns source IPs into IP keys.
	IP ClientIP
	// Log gets one line per request (default: slog.Default()); Metrics,
	// when set, gets each request's metrics.
	Log     *slog.Logger
	Metrics *logging.Metrics
	// Now is the clock (default: time.Now).
	Now func() time.Time
}

// New builds the handler in front of the verification and captcha services.
func New(v Verifications, c Captchas, o Options) *Handler {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Handler{
		verifications: v, captchas: c,
		jwksDoc: o.JWKS, outbox: o.DevOutbox, pages: o.Pages, cors: o.CORS, ip: o.IP,
		log: o.Log, metrics: o.Metrics, now: o.Now,
	}
}

type route struct {
	method string
	serve  func(h *Handler, ctx context.Context, r *Request, l *logEntry) Response
}

var routes = map[string]route{
	"/auth/v1/verification":          {"POST", (*Handler).send},
	"/auth/v1/verification/verify":   {"POST", (*Handler).verify},
	"/auth/v1/captcha/data":          {"POST", (*Handler).captchaNew},
	"/auth/v1/captcha/data/verify":   {"POST", (*Handler).captchaSolve},
	"/auth/v1/.well-known/jwks.json": {"GET", (*Handler).jwks},
	"/dev/outbox":                    {"GET", (*Handler).devOutbox},
	"/auth/v1/openapi.json":          {"GET", (*Handler).openAPI},
	"/":                              {"GET", (*Handler).page},
	"/demo.js":                       {"GET", (*Handler).page},
	"/verifykit.js":                  {"GET", (*Handler).page},
}

// publicDocuments are the routes the Origin rule leaves open: public,
// read-only documents that any site may fetch and that key, store and send
// nothing.
// They are all GET routes; looked up by path, so a request builds no key.
var publicDocuments = map[string]bool{
	"/auth/v1/.well-known/jwks.json": true,
	"/auth/v1/openapi.json":          true,
}

// Serve answers one request. It never fails: every error becomes a response.
func (h *Handler) Serve(ctx context.Context, r *Request) Response {
	start := h.now()
	l := logEntry{Route: r.Path, Method: r.Method}
	resp := h.dispatch(ctx, r, &l)
	h.cors.decorate(r, &resp)
	l.Status = resp.Status
	h.finish(ctx, r, &l, start)
	return resp
}

func (h *Handler) dispatch(ctx context.Context, r *Request, l *logEntry) Response {
	// Every log line carries the IP key, refusals included.
	key, keyErr := h.ip.Key(r.SourceIP, r.Header["x-forwarded-for"])
	r.IPKey, l.IPKey = key, key
	// The Origin rule comes before anything else, body errors included: a
	// foreign page must learn nothing and cause nothing, and a preflight from
	// it gets no CORS headers.
	if origin, present := r.Header["origin"]; !(r.Method == "GET" && publicDocuments[r.Path]) && !h.cors.allows(origin, present) {
		l.Origin = origin
		return h.fail(l, errOriginNotAllowed)
	}
	if keyErr != nil {
		l.Reason = "missing_source_ip"
		return h.fail(l, keyErr)
	}
	rt, ok := routes[r.Path]
	if !ok || h.hidden(r.Path) {
		l.Route = "unknown"
		return h.fail(l, verification.Errorf(verification.KindNotFound, "No such route"))
	}
	if r.Method == http.MethodOptions {
		return h.cors.preflight(r, rt.method)
	}
	if r.Method != rt.method {
		resp := h.fail(l, verification.Errorf(verification.KindMethodNotAllowed, "Method %s is not allowed here, use %s", r.Method, rt.method))
		resp.Header["Allow"] = rt.method
		return resp
	}
	if len(r.Body) > MaxBody {
		return h.fail(l, verification.Errorf(verification.KindPayloadTooLarge, "Request body larger than %d bytes", MaxBody))
	}
	return rt.serve(h, ctx, r, l)
}

var errOriginNotAllowed = verification.Errorf(verification.KindOriginNotAllowed, "Requests from this origin are not allowed")

func (h *Handler) fail(l *logEntry, err error) Response {
	l.Err = err
	return errorResponse(err)
}

func (h *Handler) send(ctx context.Context, r *Request, l *logEntry) Response {
	var b sendBody
	if err := decode(r.Body, &b, sendFields); err != nil {
		return h.fail(l, err)
	}
	req := verification.SendRequest{
		Target:      b.Target,
		PhoneNumber: b.PhoneNumber,
		Email:       b.Email,
		IP:          r.IPKey,
	}
	if b.Locale != nil {
		req.Locale = *b.Locale
	}
	// The captcha token comes as the x-captcha-token header or, as the
	// CloudBase JS SDK sends it on its retry, the captcha_token query
	// parameter. The header wins when both are present (it is what this API
	// documents first). A present header is a token even when empty (and
	// refused as captcha_invalid), while an empty query value is no token:
	// "?captcha_token=" is what a client with nothing cached writes.
	if tok, ok := r.Header["x-captcha-token"]; ok {
		req.CaptchaToken = &tok
	} else if tok := r.Query["captcha_token"]; tok != "" {
		req.CaptchaToken = &tok
	}
	if key, ok := r.Header["idempotency-key"]; ok {
		req.IdempotencyKey, req.Body = &key, r.Body
	}
	res, addr, err := h.verifications.Send(ctx, req)
	l.Channel, l.Target = string(addr.Channel), logging.Mask(addr)
	if addr.Channel == verification.SMS && h.metrics != nil {
		l.Country = logging.Country(addr.Identity)
	}
	l.CaptchaGiven = req.CaptchaToken != nil
	if res.Replay != nil {
		l.Idempotency = logging.OutcomeReplayed
		return replayResponse(res.Replay)
	}
	var resp Response
	if err != nil {
		resp = h.fail(l, err)
	} else {
		l.OutcomeUnknown = res.OutcomeUnknown
		resp = bodyResponse(200, sendResponse{VerificationID: res.VerificationID, ExpiresIn: res.ExpiresIn, IsUser: res.IsUser}.appendJSON(make([]byte, 0, 64+len(res.VerificationID))))
	}
	if answer := (verification.Answer{Status: resp.Status, Body: resp.Body}); res.Idempotency != nil && answer.Kept() {
		l.Idempotency = "stored"
		answer.RetryAfter, _ = strconv.Atoi(resp.Header["Retry-After"])
		if err := h.verifications.RememberAnswer(ctx, res.Idempotency, answer); err != nil {
			// The answer stands; the key's claim ends with its lease, and a
			// retry after that runs afresh (and meets the cooldown).
			l.Idempotency, l.IdempotencyErr = "store_failed", err
		}
	}
	return resp
}

// replayResponse is an answer kept for an Idempotency-Key, given again: the
// same status, body and Retry-After, marked as a replay.
func replayResponse(a *verification.Answer) Response {
	resp := bodyResponse(a.Status, a.Body)
	if a.RetryAfter > 0 {
		resp.Header["Retry-After"] = strconv.Itoa(a.RetryAfter)
	}
	resp.Header["Idempotent-Replayed"] = "true"
	return resp
}

func (h *Handler) verify(ctx context.Context, r *Request, l *logEntry) Response {
	var b verifyBody
	if err := decode(r.Body, &b, verifyFields); err != nil {
		return h.fail(l, err)
	}
	res, err := h.verifications.Verify(ctx, verification.VerifyRequest{VerificationID: b.VerificationID, VerificationCode: b.VerificationCode, IP: r.IPKey})
	if err != nil {
		return h.fail(l, err)
	}
	l.Channel = string(res.Verified.Channel)
	if res.Verified.Channel == verification.SMS && h.metrics != nil {
		l.Country = logging.Country(res.Verified.Identity)
	}
	l.Target = logging.Mask(verification.Address{Channel: res.Verified.Channel, Identity: res.Verified.Identity})
	return bodyResponse(200, verifyResponse{VerificationToken: res.Token, ExpiresIn: res.ExpiresIn}.appendJSON(make([]byte, 0, 48+len(res.Token))))
}

func (h *Handler) captchaNew(ctx context.Context, r *Request, l *logEntry) Response {
	// An empty body is the same as {}; anything else must be a
	// well-formed object.
	if len(r.Body) > 0 {
		var b emptyBody
		if err := decode(r.Body, &b, nil); err != nil {
			return h.fail(l, err)
		}
	}
	img, err := h.captchas.New(ctx, r.IPKey)
	if err != nil {
		return h.fail(l, err)
	}
	return jsonResponse(200, captchaResponse{Data: img.Data, Type: "image", Token: img.Token, ExpiresIn: img.ExpiresIn})
}

func (h *Handler) captchaSolve(ctx context.Context, r *Request, l *logEntry) Response {
	var b captchaBody
	if err := decode(r.Body, &b, captchaFields); err != nil {
		return h.fail(l, err)
	}
	if b.Token == nil || b.Key == nil {
		return h.fail(l, verification.Errorf(verification.KindInvalidRequest, "token and key are required"))
	}
	pass, err := h.captchas.Solve(ctx, *b.Token, *b.Key, r.IPKey)
	if err != nil {
		return h.fail(l, err)
	}
	return jsonResponse(200, captchaPassResponse{CaptchaToken: pass.Token, ExpiresIn: pass.ExpiresIn})
}

func (h *Handler) jwks(_ context.Context, _ *Request, _ *logEntry) Response {
	// Consumers cache the keys; a short max-age lets a rotation reach them
	// within minutes.
	return Response{Status: 200, Body: h.jwksDoc, Header: map[string]string{
		"Content-Type":  "application/jwk-set+json",
		"Cache-Control": "public, max-age=300",
	}}
}

func (h *Handler) devOutbox(_ context.Context, _ *Request, _ *logEntry) Response {
	return jsonResponse(200, h.outbox())
}

type sendResponse struct {
	VerificationID string `json:"verification_id"`
	ExpiresIn      int    `json:"expires_in"`
	IsUser         bool   `json:"is_user"`
}

type captchaResponse struct {
	Data      string `json:"data"`
	Type      string `json:"type"`
	Token     string `json:"token"`
	ExpiresIn int    `json:"expires_in"`
}

type captchaPassResponse struct {
	CaptchaToken string `json:"captcha_token"`
	ExpiresIn    int    `json:"expires_in"`
}

type verifyResponse struct {
	VerificationToken string `json:"verification_token"`
	ExpiresIn         int    `json:"expires_in"`
}

// The answers of the two hot routes are written without reflection; a test
// holds them to what json.Marshal writes.

func (r sendResponse) appendJSON(b []byte) []byte {
	b = append(b, `{"verification_id":`...)
	b, _ = jsontext.AppendQuote(b, r.VerificationID)
	b = append(b, `,"expires_in":`...)
	b = strconv.AppendInt(b, int64(r.ExpiresIn), 10)
	b = append(b, `,"is_user":`...)
	b = strconv.AppendBool(b, r.IsUser)
	return append(b, '}')
}

func (r verifyResponse) appendJSON(b []byte) []byte {
	b = append(b, `{"verification_token":`...)
	b, _ = jsontext.AppendQuote(b, r.VerificationToken)
	b = append(b, `,"expires_in":`...)
	b = strconv.AppendInt(b, int64(r.ExpiresIn), 10)
	return append(b, '}')
}

func jsonResponse(status int, v any) Response {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = 500, []byte(`{"error":"internal_error","error_code":5000,"error_description":"Internal error, please try again later"}`)
	}
	return bodyResponse(status, body)
}

// bodyResponse is a JSON answer of the given body.
func bodyResponse(status int, body []byte) Response {
	return Response{Status: status, Body: body, Header: map[string]string{
		"Content-Type": "application/json; charset=utf-8",
		// Answers carry ids, tokens and captcha images: never cache them.
		"Cache-Control": "no-store",
	}}
}

package app

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verifykit/verifykit/internal/httpapi"
	"github.com/verifykit/verifykit/internal/secrets"
)

// answerReserve is kept back from the invocation's deadline: every
// DynamoDB, provider and Secrets Manager call of a request ends that long
// before Lambda would stop the function, leaving the time to write the
// answer and its log line. (The send keeps a further reserve of its own for
// the release of a failed send; see verification.Service.Send.)
const answerReserve = 250 * time.Millisecond

// keysReadTimeout bounds the re-read of the keys' secret on the request
// path: a slow Secrets Manager costs a request at most this, and the old
// keys serve meanwhile.
const keysReadTimeout = time.Second

// Invoke serves one Lambda invocation (an API Gateway event) with the
// current keys, every call bounded by the invocation's deadline minus
// answerReserve. It makes App aws-lambda-go's lambda.Handler.
func (a *App) Invoke(ctx context.Context, event []byte) ([]byte, error) {
	ctx, cancel := withinDeadline(ctx)
	defer cancel()
	return a.keys.handler(ctx).Invoke(ctx, event)
}

// ServeHTTP serves one local request with the current keys.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.keys.handler(r.Context()).ServeHTTP(w, r)
}

// withinDeadline ends ctx answerReserve before its deadline, if it has one
// (Lambda gives every invocation's context the function's timeout).
func withinDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	d, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, d.Add(-answerReserve))
}

// keyRefresher holds the handler built with the current keys, and re-reads
// the keys' secret lazily, on the request path, at most once per every: a
// rotated key reaches every warm instance within that time, with no cold
// start. One request at a time re-reads (the others serve on with the keys
// they have, never waiting); a failed read keeps the old keys, logs, and is
// tried again after the next interval.
type keyRefresher struct {
	read  func(context.Context) (secrets.Keys, error) // nil: keys given literally, nothing to re-read
	build func(secrets.Keys) (*httpapi.Handler, error)
	every time.Duration
	now   func() time.Time
	log   *slog.Logger

	current atomic.Pointer[httpapi.Handler]
	next    atomic.Int64 // UnixNano of the next re-read

	mu   sync.Mutex   // held by the request that re-reads
	keys secrets.Keys // the keys of current; under mu
}

func (r *keyRefresher) handler(ctx context.Context) *httpapi.Handler {
	if r.read == nil || r.now().UnixNano() < r.next.Load() || !r.mu.TryLock() {
		return r.current.Load()
	}
	defer r.mu.Unlock()
	now := r.now()
	if now.UnixNano() < r.next.Load() { // another request has just re-read
		return r.current.Load()
	}
	r.next.Store(now.Add(r.every).UnixNano())
	ctx, cancel := context.WithTimeout(ctx, keysReadTimeout)
	defer cancel()
	keys, err := r.read(ctx)
	if err != nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "keys: re-reading the secret failed; serving on with the current keys", slog.String("error", err.Error()))
		return r.current.Load()
	}
	if keys.Equal(r.keys) {
		return r.current.Load()
	}
	h, err := r.build(keys)
	if err != nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "keys: the re-read secret gives unusable keys; serving on with the current keys", slog.String("error", err.Error()))
		return r.current.Load()
	}
	r.keys = keys
	r.current.Store(h)
	r.log.LogAttrs(ctx, slog.LevelInfo, "keys: the secret changed; serving with the new keys", slog.Bool("previous_signing_key", keys.Previous != nil))
	return h
}

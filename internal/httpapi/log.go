package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/verifykit/verifykit/internal/logging"
	"github.com/verifykit/verifykit/internal/verification"
)

// logEntry gathers what the one log line of a request says.
type logEntry struct {
	Route          string
	Method         string
	Status         int
	Channel        string
	Country        string // of an SMS number, for the metrics' Country dimension
	Target         string // masked
	IPKey          string
	Origin         string // a refused Origin header
	Reason         string // why an internal_error happened, or which rule refused, when known
	CaptchaGiven   bool
	OutcomeUnknown bool
	Err            error
	// Idempotency is what became of a send's Idempotency-Key: "replayed",
	// "stored" or "store_failed" (with IdempotencyErr), "" without one.
	Idempotency    string
	IdempotencyErr error
}

// finish writes the request's log line and metrics.
func (h *Handler) finish(ctx context.Context, r *Request, l *logEntry, start time.Time) {
	kind := verification.KindOf(l.Err)
	outcome := "ok"
	if kind != "" {
		outcome = string(kind)
	}
	if l.Idempotency == logging.OutcomeReplayed {
		// Not a new refusal or send: the alarms on refusals count neither.
		outcome = logging.OutcomeReplayed
	}
	level := slog.LevelInfo
	// A refusal that several rules share names its rule (the SMS budget's
	// rate_limit_exceeded, the pumping breaker's captcha_required).
	if e, ok := errors.AsType[*verification.Error](l.Err); ok && e.LogReason != "" && l.Reason == "" {
		l.Reason = e.LogReason
	}
	// Room for every attribute, so the slice stays on the stack.
	attrs := make([]slog.Attr, 0, 16)
	attrs = append(attrs,
		slog.String("request_id", r.RequestID),
		slog.String("route", l.Route),
		slog.String("method", l.Method),
		slog.Int("status", l.Status),
		slog.String("outcome", outcome),
		slog.Float64("latency_ms", float64(h.now().Sub(start).Microseconds())/1000),
	)
	if l.IPKey != "" {
		attrs = append(attrs, slog.String("ip_key", l.IPKey))
	}
	if l.Channel != "" {
		attrs = append(attrs, slog.String("channel", l.Channel))
	}
	if l.Target != "" {
		attrs = append(attrs, slog.String("target", l.Target))
	}
	if l.Origin != "" {
		attrs = append(attrs, slog.String("origin", truncate(l.Origin, maxLoggedOrigin)))
	}
	if l.Reason != "" {
		attrs = append(attrs, slog.String("reason", l.Reason))
	}
	if l.CaptchaGiven {
		attrs = append(attrs, slog.Bool("captcha_token", true))
	}
	if l.OutcomeUnknown {
		level = slog.LevelWarn
		attrs = append(attrs, slog.Bool("delivery_outcome_unknown", true))
	}
	if l.Idempotency != "" {
		attrs = append(attrs, slog.String("idempotency", l.Idempotency))
		if l.IdempotencyErr != nil {
			level = max(level, slog.LevelWarn)
			attrs = append(attrs, slog.String("idempotency_cause", l.IdempotencyErr.Error()))
		}
	}
	if l.Err != nil {
		attrs = append(attrs, slog.String("error", string(kind)))
		// Causes are logged for server-side failures only; refusals of
		// client input are expected and their causes say nothing new.
		if kind == verification.KindInternal || kind == verification.KindServiceUnavailable || kind == verification.KindSendFailed {
			level = slog.LevelError
			// Provider and store texts can quote a phone number or an
			// address; the redactor masks them, as a second line behind
			// senders that already report failures by code.
			attrs = append(attrs, slog.String("cause", logging.Redact(l.Err.Error())))
		}
	}
	h.log.LogAttrs(ctx, level, "request", attrs...)
	if h.metrics != nil {
		h.metrics.Request(logging.RequestMetrics{
			Route:          l.Route,
			Outcome:        outcome,
			Reason:         l.Reason,
			Channel:        l.Channel,
			Country:        l.Country,
			OutcomeUnknown: l.OutcomeUnknown,
			Time:           start,
		})
	}
}

// maxLoggedOrigin bounds what a refused Origin header, which anyone can
// write, adds to a log line.
const maxLoggedOrigin = 128

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

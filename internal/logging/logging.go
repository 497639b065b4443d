// Package logging sets up structured JSON logs (log/slog), masks phone
// numbers and emails for them, and writes CloudWatch metrics as Embedded
// Metric Format lines in the same stream (no extra call, no extra cost).
package logging

import (
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/nyaruka/phonenumbers"

	"github.com/verifykit/verifykit/internal/verification"
)

// NewLogger returns the service's JSON logger. In Lambda it is aws-lambda-go's
// handler (stdout, requestId from the invocation, AWS_LAMBDA_LOG_LEVEL);
// elsewhere a JSON handler on w with the same field names.
func NewLogger(lambda bool, w io.Writer, level slog.Level) *slog.Logger {
	if lambda {
		return lambdacontext.NewLogger()
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: lambdacontext.ReplaceAttr}))
}

// Mask hides the middle of a phone number or the local part of an email so
// logs can tell targets apart without holding them: "+86 138****8000",
// "u***@example.com". Anything that is not E.164 or an address is masked
// whole.
func Mask(a verification.Address) string {
	switch a.Channel {
	case verification.SMS:
		cc, nsn, ok := splitE164(a.Identity)
		if !ok {
			return "***"
		}
		if len(nsn) < 8 {
			return "+" + cc + " ****"
		}
		return "+" + cc + " " + nsn[:3] + "****" + nsn[len(nsn)-4:]
	case verification.Email:
		at := strings.LastIndexByte(a.Identity, '@')
		if at < 1 {
			return "***"
		}
		return a.Identity[:1] + "***" + a.Identity[at:]
	}
	return ""
}

// splitE164 splits an E.164 number ("+8613800138000") into its country
// calling code and national significant number. Calling codes are
// prefix-free, so the first one to three digits that form one are it, which
// is how libphonenumber reads them (without parsing the whole number again
// on every log line).
func splitE164(s string) (cc, nsn string, ok bool) {
	if len(s) < 3 || s[0] != '+' {
		return "", "", false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", "", false
		}
	}
	codes := phonenumbers.GetSupportedCallingCodes()
	for n := 1; n <= 3 && 1+n < len(s); n++ {
		if c, err := strconv.Atoi(s[1 : 1+n]); err == nil && codes[c] {
			return s[1 : 1+n], s[1+n:], true
		}
	}
	return "", "", false
}

// Metrics writes CloudWatch Embedded Metric Format lines.
type Metrics struct {
	namespace string
	service   string

	mu sync.Mutex
	w  io.Writer
}

// NewMetrics writes metrics of namespace, with dimension Service=service, to w
// (stdout in Lambda, where CloudWatch Logs extracts them).
func NewMetrics(w io.Writer, namespace, service string) *Metrics {
	return &Metrics{w: w, namespace: namespace, service: service}
}

// RequestMetrics is what one request counts.
type RequestMetrics struct {
	Route          string
	Outcome        string // "ok" or the error kind
	OutcomeUnknown bool
	Time           time.Time
}

// Metric names. The template's alarms refer to them.
const (
	MetricSendsAccepted    = "SendsAccepted"
	MetricSendsRefused     = "SendsRefused"
	MetricCaptchaRequired  = "CaptchaRequired"
	MetricProviderFailures = "ProviderFailures"
	MetricOutcomeUnknown   = "DeliveryOutcomeUnknown"
	MetricVerifySucceeded  = "VerifySucceeded"
	MetricVerifyFailed     = "VerifyFailed"
	MetricStoreUnavailable = "StoreUnavailable"
	MetricSendsReplayed    = "SendsReplayed"
)

// OutcomeReplayed is the outcome of a send answered from its Idempotency-Key.
const OutcomeReplayed = "replayed"

// Request writes the metrics line of one request, if it counts anything.
func (m *Metrics) Request(r RequestMetrics) {
	counts := map[string]int{}
	switch r.Route {
	case "/auth/v1/verification":
		switch r.Outcome {
		case "ok":
			counts[MetricSendsAccepted] = 1
		case OutcomeReplayed:
			// An earlier answer given again (Idempotency-Key): neither a new
			// send nor a new refusal, so the refusal alarm ignores it.
			counts[MetricSendsReplayed] = 1
		default:
			counts[MetricSendsRefused] = 1
		}
		switch r.Outcome {
		case string(verification.KindCaptchaRequired):
			counts[MetricCaptchaRequired] = 1
		case string(verification.KindSendFailed):
			counts[MetricProviderFailures] = 1
		}
		if r.OutcomeUnknown {
			counts[MetricOutcomeUnknown] = 1
		}
	case "/auth/v1/verification/verify":
		if r.Outcome == "ok" {
			counts[MetricVerifySucceeded] = 1
		} else {
			counts[MetricVerifyFailed] = 1
		}
	}
	if r.Outcome == string(verification.KindServiceUnavailable) {
		counts[MetricStoreUnavailable] = 1
	}
	if len(counts) == 0 {
		return
	}
	m.write(r, counts)
}

func (m *Metrics) write(r RequestMetrics, counts map[string]int) {
	defs := make([]map[string]string, 0, len(counts))
	line := map[string]any{
		"Service": m.service,
		"Route":   r.Route,
		"Outcome": r.Outcome,
	}
	for name, v := range counts {
		defs = append(defs, map[string]string{"Name": name, "Unit": "Count"})
		line[name] = v
	}
	line["_aws"] = map[string]any{
		"Timestamp": r.Time.UnixMilli(),
		"CloudWatchMetrics": []map[string]any{{
			"Namespace": m.namespace,
			// Per service for the alarms, and per outcome to see refusals by
			// reason.
			"Dimensions": [][]string{{"Service"}, {"Service", "Outcome"}},
			"Metrics":    defs,
		}},
	}
	b, err := json.Marshal(line)
	if err != nil {
		return
	}
	b = append(b, '\n')
	m.mu.Lock()
	defer m.mu.Unlock()
	_, _ = m.w.Write(b)
}

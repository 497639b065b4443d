// Package logging sets up structured JSON logs (log/slog), masks phone
// numbers and emails for them, and writes CloudWatch metrics as Embedded
// Metric Format lines in the same stream (no extra call, no extra cost).
package logging

import (
	"context"
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
	Reason         string // the refusal's log reason (verification.Error.LogReason)
	Channel        string // "sms", "email", "" when unknown
	Country        string // ISO region of an SMS number (Country), "" otherwise
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
	// SMS pumping: sends refused because the global SMS budget was spent,
	// and breaker trips (a prefix turning suspect or blocked).
	MetricSMSBudgetExhausted = "SMSBudgetExhausted"
	MetricBreakerTrips       = "BreakerTrips"
)

// The dimensions of the metrics. Every metric goes out per Service, and per
// Service and Outcome (refusals by reason); a request whose channel is known
// also per Service, Channel and Country (sends and verifies by channel and
// country, and so conversion); a breaker trip per Service and Country.
const (
	DimService = "Service"
	DimOutcome = "Outcome"
	DimChannel = "Channel"
	DimCountry = "Country"
)

// noCountry is the Country dimension of email and of unknown numbers: a
// dimension value must not be empty.
const noCountry = "none"

// Country is the ISO 3166 region of an E.164 number's calling code ("CN"
// for +86), the region libphonenumber names first for a shared code ("US"
// for +1); "" for anything else. A digits-only prefix with a "+" works as
// well as a whole number.
func Country(e164 string) string {
	cc, _, ok := splitE164(e164)
	if !ok {
		return ""
	}
	n, err := strconv.Atoi(cc)
	if err != nil {
		return ""
	}
	r := phonenumbers.GetRegionCodeForCountryCode(n)
	if r == "ZZ" {
		return ""
	}
	return r
}

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
		if r.Reason == verification.ReasonBudgetExhausted {
			counts[MetricSMSBudgetExhausted] = 1
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
	line := map[string]any{
		DimService: m.service,
		"Route":    r.Route,
		DimOutcome: r.Outcome,
	}
	// Per service for the alarms, and per outcome to see refusals by reason.
	dims := [][]string{{DimService}, {DimService, DimOutcome}}
	if r.Channel != "" {
		country := r.Country
		if country == "" {
			country = noCountry
		}
		line[DimChannel], line[DimCountry] = r.Channel, country
		dims = append(dims, []string{DimService, DimChannel, DimCountry})
	}
	m.emit(line, dims, counts, r.Time)
}

// Breaker writes the metric line of a breaker transition: a trip (to suspect
// or blocked) counts BreakerTrips per country; the new state is a property
// of the line, not a dimension.
func (m *Metrics) Breaker(t verification.BreakerTransition, country string, at time.Time) {
	if t.To <= t.From {
		return
	}
	if country == "" {
		country = noCountry
	}
	line := map[string]any{DimService: m.service, DimCountry: country, "State": t.To.String()}
	m.emit(line, [][]string{{DimService}, {DimService, DimCountry}}, map[string]int{MetricBreakerTrips: 1}, at)
}

// emit writes one EMF line: line's properties (its dimensions among them),
// the counts as metrics over dims.
func (m *Metrics) emit(line map[string]any, dims [][]string, counts map[string]int, at time.Time) {
	defs := make([]map[string]string, 0, len(counts))
	for name, v := range counts {
		defs = append(defs, map[string]string{"Name": name, "Unit": "Count"})
		line[name] = v
	}
	line["_aws"] = map[string]any{
		"Timestamp": at.UnixMilli(),
		"CloudWatchMetrics": []map[string]any{{
			"Namespace":  m.namespace,
			"Dimensions": dims,
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

// BreakerLog reports breaker transitions: one log line each (warning for a
// trip) with the prefix, its country and the counts, and the trips as
// metrics. It is the service's verification.BreakerObserver.
type BreakerLog struct {
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
}

// NewBreakerLog reports transitions to log and, when metrics is not nil
// (Lambda), as metrics stamped with now.
func NewBreakerLog(log *slog.Logger, metrics *Metrics, now func() time.Time) *BreakerLog {
	return &BreakerLog{log: log, metrics: metrics, now: now}
}

// Transition implements verification.BreakerObserver.
func (b *BreakerLog) Transition(t verification.BreakerTransition) {
	country := Country("+" + t.Prefix)
	level := slog.LevelInfo
	if t.To > t.From {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("prefix", t.Prefix),
		slog.String("country", country),
		slog.String("from", t.From.String()),
		slog.String("to", t.To.String()),
	}
	if t.CountsKnown {
		attrs = append(attrs,
			slog.Int64("unverified", t.Counts.Unverified),
			slog.Int64("verified", (t.Counts.Unverified-t.Counts.Excess)/verification.VerifiedWeight))
	}
	b.log.LogAttrs(context.Background(), level, "sms pumping breaker", attrs...)
	if b.metrics != nil {
		b.metrics.Breaker(t, country, b.now())
	}
}

package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/verifykit/verifykit/internal/verification"
)

func TestMask(t *testing.T) {
	tests := []struct {
		in   verification.Address
		want string
	}{
		{verification.Address{Channel: verification.SMS, Identity: "+8613800138000"}, "+86 138****8000"},
		{verification.Address{Channel: verification.SMS, Identity: "+85251234567"}, "+852 512****4567"},
		{verification.Address{Channel: verification.SMS, Identity: "garbage"}, "***"},
		{verification.Address{Channel: verification.SMS, Identity: "+12025550123"}, "+1 202****0123"},
		{verification.Address{Channel: verification.SMS, Identity: "+3531234"}, "+353 ****"},
		{verification.Address{Channel: verification.SMS, Identity: "13800138000"}, "***"},
		{verification.Address{Channel: verification.SMS, Identity: "+86 138"}, "***"},
		{verification.Address{Channel: verification.SMS, Identity: "+"}, "***"},
		{verification.Address{Channel: verification.SMS, Identity: ""}, "***"},
		{verification.Address{Channel: verification.Email, Identity: "user@example.com"}, "u***@example.com"},
		{verification.Address{Channel: verification.Email, Identity: "a@b"}, "a***@b"},
		{verification.Address{Channel: verification.Email, Identity: "@b"}, "***"},
		{verification.Address{}, ""},
	}
	for _, tt := range tests {
		if got := Mask(tt.in); got != tt.want {
			t.Errorf("Mask(%+v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// referenceMask is the SMS mask as libphonenumber reads the number: the
// oracle of TestMaskMatchesLibrary.
func referenceMask(identity string) string {
	num, err := phonenumbers.Parse(identity, "")
	if err != nil {
		return "***"
	}
	cc := strconv.Itoa(int(num.GetCountryCode()))
	nsn := phonenumbers.GetNationalSignificantNumber(num)
	if len(nsn) < 8 {
		return "+" + cc + " ****"
	}
	return "+" + cc + " " + nsn[:3] + "****" + nsn[len(nsn)-4:]
}

// TestMaskMatchesLibrary holds Mask, which splits the E.164 number itself,
// to libphonenumber for the example numbers of every type of every region
// (what PhoneParser can produce is a subset of these shapes).
func TestMaskMatchesLibrary(t *testing.T) {
	n := 0
	for r := range phonenumbers.GetSupportedRegions() {
		for typ := phonenumbers.FIXED_LINE; typ <= phonenumbers.VOICEMAIL; typ++ {
			num := phonenumbers.GetExampleNumberForType(r, typ)
			if num == nil {
				continue
			}
			e164 := phonenumbers.Format(num, phonenumbers.E164)
			got := Mask(verification.Address{Channel: verification.SMS, Identity: e164})
			if want := referenceMask(e164); got != want {
				t.Errorf("Mask(%s) = %q, libphonenumber %q", e164, got, want)
			}
			n++
		}
	}
	t.Logf("%d numbers", n)
}

func TestCountry(t *testing.T) {
	for in, want := range map[string]string{"+8613800138000": "CN", "+8613800": "CN", "+14155550100": "US", "+447700900000": "GB", "+999": "", "u@example.com": ""} {
		if got := Country(in); got != want {
			t.Errorf("Country(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMetricsDimensions checks that sends and verifies go out by channel and
// country, and breaker trips by country.
func TestMetricsDimensions(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	m := NewMetrics(&buf, "Verifykit", "verifykit")
	m.Request(RequestMetrics{Route: "/auth/v1/verification", Outcome: "ok", Channel: "sms", Country: "CN", Time: at})
	m.Request(RequestMetrics{Route: "/auth/v1/verification/verify", Outcome: "ok", Channel: "email", Time: at})
	m.Request(RequestMetrics{Route: "/auth/v1/verification", Outcome: "invalid_request", Time: at})
	m.Breaker(verification.BreakerTransition{Prefix: "8613800", From: verification.Healthy, To: verification.Suspect}, "CN", at)
	m.Breaker(verification.BreakerTransition{Prefix: "8613800", From: verification.Blocked, To: verification.Healthy}, "CN", at) // not a trip
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{
		"SendsAccepted [[Service] [Service Outcome] [Service Channel Country]] Channel=sms Country=CN",
		"VerifySucceeded [[Service] [Service Outcome] [Service Channel Country]] Channel=email Country=none",
		"SendsRefused [[Service] [Service Outcome]] Channel=<nil> Country=<nil>",
		"BreakerTrips [[Service] [Service Country]] Channel=<nil> Country=CN",
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, l := range lines {
		var line map[string]any
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatal(err)
		}
		cw := line["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
		name := cw["Metrics"].([]any)[0].(map[string]any)["Name"]
		got := fmt.Sprintf("%v %v Channel=%v Country=%v", name, cw["Dimensions"], line["Channel"], line["Country"])
		if got != want[i] {
			t.Errorf("line %d: %s, want %s", i, got, want[i])
		}
	}
}

func TestMetricsLines(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		r    RequestMetrics
		want map[string]float64 // metric -> value; nil: no line
	}{
		{RequestMetrics{Route: "/auth/v1/verification", Outcome: "ok"}, map[string]float64{MetricSendsAccepted: 1}},
		{RequestMetrics{Route: "/auth/v1/verification", Outcome: "ok", OutcomeUnknown: true}, map[string]float64{MetricSendsAccepted: 1, MetricOutcomeUnknown: 1}},
		{RequestMetrics{Route: "/auth/v1/verification", Outcome: "send_failed"}, map[string]float64{MetricSendsRefused: 1, MetricProviderFailures: 1}},
		{RequestMetrics{Route: "/auth/v1/verification", Outcome: "captcha_required"}, map[string]float64{MetricSendsRefused: 1, MetricCaptchaRequired: 1}},
		{RequestMetrics{Route: "/auth/v1/verification", Outcome: "service_unavailable"}, map[string]float64{MetricSendsRefused: 1, MetricStoreUnavailable: 1}},
		{RequestMetrics{Route: "/auth/v1/verification", Outcome: OutcomeReplayed}, map[string]float64{MetricSendsReplayed: 1}},
		{RequestMetrics{Route: "/auth/v1/verification/verify", Outcome: "ok"}, map[string]float64{MetricVerifySucceeded: 1}},
		{RequestMetrics{Route: "/auth/v1/verification/verify", Outcome: "invalid_verification_code"}, map[string]float64{MetricVerifyFailed: 1}},
		{RequestMetrics{Route: "/auth/v1/verification", Outcome: "rate_limit_exceeded", Reason: "sms_budget_exhausted"}, map[string]float64{MetricSendsRefused: 1, MetricSMSBudgetExhausted: 1}},
		{RequestMetrics{Route: "/auth/v1/verification", Outcome: "rate_limit_exceeded"}, map[string]float64{MetricSendsRefused: 1}},
		{RequestMetrics{Route: "/auth/v1/verification", Outcome: "destination_blocked", Channel: "sms", Country: "CN"}, map[string]float64{MetricSendsRefused: 1}},
		{RequestMetrics{Route: "/auth/v1/.well-known/jwks.json", Outcome: "ok"}, nil},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		m := NewMetrics(&buf, "Verifykit", "verifykit")
		tt.r.Time = at
		m.Request(tt.r)
		if tt.want == nil {
			if buf.Len() != 0 {
				t.Errorf("%+v wrote %s", tt.r, buf.String())
			}
			continue
		}
		if strings.Count(buf.String(), "\n") != 1 {
			t.Fatalf("%+v: want one line, got %q", tt.r, buf.String())
		}
		var line map[string]any
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		meta := line["_aws"].(map[string]any)
		if meta["Timestamp"] != float64(at.UnixMilli()) {
			t.Errorf("timestamp %v", meta["Timestamp"])
		}
		cw := meta["CloudWatchMetrics"].([]any)[0].(map[string]any)
		if cw["Namespace"] != "Verifykit" || line["Service"] != "verifykit" || line["Outcome"] != tt.r.Outcome {
			t.Errorf("line %v", line)
		}
		defs := cw["Metrics"].([]any)
		if len(defs) != len(tt.want) {
			t.Errorf("%+v: %d metrics, want %d", tt.r, len(defs), len(tt.want))
		}
		for _, d := range defs {
			name := d.(map[string]any)["Name"].(string)
			if line[name] != tt.want[name] {
				t.Errorf("%+v: %s = %v, want %v", tt.r, name, line[name], tt.want[name])
			}
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nothing here", "nothing here"},
		{"MessageRejected: Email address is not verified. The following identities failed the check in region US-EAST-1: Existing@Example.com",
			"MessageRejected: Email address is not verified. The following identities failed the check in region US-EAST-1: E***@Example.com"},
		{"550 5.1.1 <user.name+tag@mail.example.com>: Recipient address rejected", "550 5.1.1 <u***@mail.example.com>: Recipient address rejected"},
		{"affected recipient(s): <a@b.c>, <d@e>", "affected recipient(s): <a***@b.c>, <d***@e>"},
		{"Invalid parameter: PhoneNumber Reason: +8613800138000 is not valid to publish to", "Invalid parameter: PhoneNumber Reason: +86 138****8000 is not valid to publish to"},
		{"number +86 13800138000.", "number +86 138****8000."},
		{"rejected 13800138000, 8613800138000", "rejected 138****8000, 861****8000"},
		{"short 1234567 kept short", "short ****67 kept short"},
		{"dial tcp 127.0.0.1:8000: connect: connection refused", "dial tcp 127.0.0.1:8000: connect: connection refused"},
		{"StatusCode: 400, RequestID: 6f1c2a4e-0000-4000-8000-000000000002, x1234567890", "StatusCode: 400, RequestID: 6f1c2a4e-0000-4000-8000-000000000002, x1234567890"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

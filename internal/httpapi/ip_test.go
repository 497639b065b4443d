package httpapi_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/verifykit/verifykit/internal/apptest"
	"github.com/verifykit/verifykit/internal/httpapi"
	"github.com/verifykit/verifykit/internal/verification"
)

func TestClientIPKey(t *testing.T) {
	tests := []struct {
		name   string
		c      httpapi.ClientIP
		source string
		xff    string
		want   string // "" for a refusal
	}{
		{"IPv4", httpapi.ClientIP{}, "203.0.113.9", "", "203.0.113.9"},
		{"IPv4 with spaces", httpapi.ClientIP{}, " 203.0.113.9 ", "", "203.0.113.9"},
		{"IPv4-mapped IPv6 is IPv4", httpapi.ClientIP{}, "::ffff:203.0.113.9", "", "203.0.113.9"},
		{"IPv4-mapped, hex form", httpapi.ClientIP{}, "::ffff:cb00:7109", "", "203.0.113.9"},
		{"IPv6 grouped by /64", httpapi.ClientIP{}, "2001:db8:1:2:3:4:5:6", "", "2001:db8:1:2::/64"},
		{"IPv6 upper case, long form", httpapi.ClientIP{}, "2001:0DB8:0001:0002:FFFF:0000:0000:0001", "", "2001:db8:1:2::/64"},
		{"IPv6 /48", httpapi.ClientIP{IPv6PrefixBits: 48}, "2001:db8:1:2::1", "", "2001:db8:1::/48"},
		{"IPv6 /128", httpapi.ClientIP{IPv6PrefixBits: 128}, "2001:db8:1:2::1", "", "2001:db8:1:2::1/128"},
		{"empty", httpapi.ClientIP{}, "", "", ""},
		{"garbage", httpapi.ClientIP{}, "not-an-ip", "", ""},
		{"with port", httpapi.ClientIP{}, "203.0.113.9:443", "", ""},
		{"with zone", httpapi.ClientIP{}, "fe80::1%eth0", "", ""},
		{"no proxies: X-Forwarded-For ignored", httpapi.ClientIP{}, "203.0.113.9", "192.0.2.1", "203.0.113.9"},

		// One trusted proxy (CloudFront): it appended the client it saw.
		{"1 hop", httpapi.ClientIP{TrustedProxyHops: 1}, "130.176.0.1", "192.0.2.1", "192.0.2.1"},
		{"1 hop, client-written entries left of it", httpapi.ClientIP{TrustedProxyHops: 1}, "130.176.0.1", "10.0.0.1, 198.51.100.99, 192.0.2.1", "192.0.2.1"},
		{"1 hop, client-written garbage left of it", httpapi.ClientIP{TrustedProxyHops: 1}, "130.176.0.1", "<script>, 192.0.2.1", "192.0.2.1"},
		{"1 hop, API Gateway appended the source", httpapi.ClientIP{TrustedProxyHops: 1}, "130.176.0.1", "198.51.100.99, 192.0.2.1, 130.176.0.1", "192.0.2.1"},
		{"1 hop, IPv6 client", httpapi.ClientIP{TrustedProxyHops: 1}, "130.176.0.1", "2001:db8:9:9::1,130.176.0.1", "2001:db8:9:9::/64"},
		{"1 hop, no header", httpapi.ClientIP{TrustedProxyHops: 1}, "130.176.0.1", "", ""},
		{"1 hop, only the source", httpapi.ClientIP{TrustedProxyHops: 1}, "130.176.0.1", "130.176.0.1", ""},
		{"1 hop, unparseable entry", httpapi.ClientIP{TrustedProxyHops: 1}, "130.176.0.1", "192.0.2.1, bogus", ""},
		{"1 hop, empty entry", httpapi.ClientIP{TrustedProxyHops: 1}, "130.176.0.1", "192.0.2.1,", ""},
		{"1 hop, missing source", httpapi.ClientIP{TrustedProxyHops: 1}, "", "192.0.2.1", ""},
		// Two (CloudFront, then a load balancer): the client is 2nd from the right.
		{"2 hops", httpapi.ClientIP{TrustedProxyHops: 2}, "10.1.1.1", "198.51.100.99, 192.0.2.1, 130.176.0.1", "192.0.2.1"},
		{"2 hops, appended source dropped", httpapi.ClientIP{TrustedProxyHops: 2}, "10.1.1.1", "192.0.2.1, 130.176.0.1, 10.1.1.1", "192.0.2.1"},
		{"2 hops, too few", httpapi.ClientIP{TrustedProxyHops: 2}, "10.1.1.1", "130.176.0.1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.c.Key(tt.source, tt.xff)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("got key %q, want a refusal", got)
				}
				if !strings.HasPrefix(err.Error(), "missing_source_ip") {
					t.Fatalf("error %q does not say missing_source_ip", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestIPv6SharesOneBudgetPerPrefix: rotating addresses inside one /64 does
// not buy a new per-IP budget or get past the captcha gate.
func TestIPv6SharesOneBudgetPerPrefix(t *testing.T) {
	s := apptest.New(t, map[string]string{"IP_HOURLY_LIMIT": "2", "CAPTCHA_IP_THRESHOLD": "1", "CAPTCHA_TARGET_THRESHOLD": "0"})
	send := func(ip, email string) (int, string) {
		st, _, b := s.Do(t, "POST", sendPath, ip, fmt.Sprintf(`{"target":"ANY","email":%q}`, email), nil)
		e, _ := b["error"].(string)
		return st, e
	}
	if st, e := send("2001:db8:1:2::1", "a@b.c"); st != 200 {
		t.Fatalf("first send: %d %s", st, e)
	}
	// Another address in the same /64: the captcha gate (1 send) applies.
	if st, e := send("2001:db8:1:2:ffff:ffff:ffff:ffff", "b@b.c"); e != "captcha_required" {
		t.Fatalf("same /64: %d %s, want captcha_required", st, e)
	}
	// Another /64 has its own budget.
	if st, e := send("2001:db8:1:3::1", "c@b.c"); st != 200 {
		t.Fatalf("next /64: %d %s", st, e)
	}
	// IPv4 and its IPv4-mapped form are one client.
	if st, e := send("192.0.2.7", "d@b.c"); st != 200 {
		t.Fatalf("IPv4: %d %s", st, e)
	}
	if st, e := send("::ffff:192.0.2.7", "e@b.c"); e != "captcha_required" {
		t.Fatalf("IPv4-mapped: %d %s, want captcha_required", st, e)
	}
	keys := logValues(t, s.Stdout.String(), "ip_key")
	want := []string{"2001:db8:1:2::/64", "2001:db8:1:2::/64", "2001:db8:1:3::/64", "192.0.2.7", "192.0.2.7"}
	if strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Fatalf("logged IP keys %v, want %v", keys, want)
	}
}

// TestIPv6PrefixBitsConfig: IPV6_PREFIX_BITS reaches the handler.
func TestIPv6PrefixBitsConfig(t *testing.T) {
	s := apptest.New(t, map[string]string{"IP_HOURLY_LIMIT": "1", "CAPTCHA_IP_THRESHOLD": "0", "IPV6_PREFIX_BITS": "48"})
	if st, _, b := s.Do(t, "POST", sendPath, "2001:db8:1:2::1", `{"target":"ANY","email":"a@b.c"}`, nil); st != 200 {
		t.Fatalf("first: %d %v", st, b)
	}
	if st, _, b := s.Do(t, "POST", sendPath, "2001:db8:1:ff::1", `{"target":"ANY","email":"b@b.c"}`, nil); st != 429 {
		t.Fatalf("same /48: %d %v, want 429", st, b)
	}
}

// TestMissingSourceIP: no parseable source IP is internal_error, logged as
// missing_source_ip, on every route, and reaches no service.
func TestMissingSourceIP(t *testing.T) {
	for _, ip := range []string{"", "unknown", "203.0.113.9:1234"} {
		t.Run(fmt.Sprintf("%q", ip), func(t *testing.T) {
			v := &fakeVerifications{} // every fake unset: reaching one fails the test
			h, log := fakeHandler(t, v, nil)
			for _, path := range []string{sendPath, "/auth/v1/verification/verify", "/auth/v1/captcha/data", "/auth/v1/captcha/data/verify"} {
				st, hdr, b := call(t, h, "POST", path, ip, `{"target":"ANY","email":"a@b.c"}`, nil, nil)
				if st != 500 {
					t.Fatalf("%s: %d %v, want 500", path, st, b)
				}
				checkEnvelope(t, st, hdr, b, "internal_error")
			}
			if reasons := logValues(t, log.String(), "reason"); strings.Join(reasons, ",") != strings.Repeat("missing_source_ip,", 3)+"missing_source_ip" {
				t.Fatalf("log reasons %v, want missing_source_ip on each of 4 lines", reasons)
			}
			// A send with an IP is then served, under that IP.
			v.send = func(req verification.SendRequest) (verification.SendResult, verification.Address, error) {
				if req.IP != "203.0.113.9" {
					t.Errorf("IP key %q, want 203.0.113.9", req.IP)
				}
				return accept(req)
			}
			if st, _, b := call(t, h, "POST", sendPath, "203.0.113.9", `{"target":"ANY","email":"a@b.c"}`, nil, nil); st != 200 {
				t.Fatalf("send with an IP afterwards: %d %v", st, b)
			}
		})
	}
}

// TestTrustedProxyHops: behind one trusted proxy, the service is handed the
// entry the proxy appended as the IP key; entries the client wrote further
// left never choose a budget, and a request without the proxy's entry is
// refused before any service.
func TestTrustedProxyHops(t *testing.T) {
	var keys []string
	h, log := fakeHandlerWith(t, &fakeVerifications{send: oneSendPerIP(&keys)}, nil, httpapi.Options{IP: httpapi.ClientIP{TrustedProxyHops: 1}})
	const edge = "130.176.0.1" // the proxy, as API Gateway saw it
	send := func(email, xff string) (int, string) {
		st, _, b := call(t, h, "POST", sendPath, edge, fmt.Sprintf(`{"target":"ANY","email":%q}`, email), map[string]string{"x-forwarded-for": xff}, nil)
		e, _ := b["error"].(string)
		return st, e
	}
	if st, e := send("a@b.c", "192.0.2.1"); st != 200 {
		t.Fatalf("first: %d %s", st, e)
	}
	// The same client, with made-up entries in front: same budget.
	for i, xff := range []string{"10.9.9.9, 192.0.2.1", "198.51.100.1,203.0.113.1, 192.0.2.1", "192.0.2.1, " + edge} {
		if st, e := send(fmt.Sprintf("x%d@b.c", i), xff); e != "rate_limit_exceeded" {
			t.Fatalf("X-Forwarded-For %q: %d %s, want rate_limit_exceeded", xff, st, e)
		}
	}
	// Another client behind the same proxy: its own budget.
	if st, e := send("b@b.c", "192.0.2.1, 192.0.2.2"); st != 200 {
		t.Fatalf("second client: %d %s", st, e)
	}
	for _, xff := range []string{"", edge, "nonsense"} {
		if st, e := send("c@b.c", xff); st != 500 || e != "internal_error" {
			t.Fatalf("X-Forwarded-For %q: %d %s, want 500 internal_error", xff, st, e)
		}
	}
	// The three refused requests never reached the service.
	if want := "192.0.2.1 192.0.2.1 192.0.2.1 192.0.2.1 192.0.2.2"; strings.Join(keys, " ") != want {
		t.Fatalf("IP keys handed to the service: %v, want %s", keys, want)
	}
	for _, spoof := range []string{"10.9.9.9", "198.51.100.1", "203.0.113.1"} {
		if strings.Contains(log.String(), spoof) {
			t.Errorf("client-written entry %s reached the logs", spoof)
		}
	}
}

// TestTrustedProxyHopsLambda: in a REST event, X-Forwarded-For may arrive as
// several lines (multiValueHeaders); all count, in order, and the client's
// own lines never decide the IP key the service is handed.
func TestTrustedProxyHopsLambda(t *testing.T) {
	var keys []string
	h, _ := fakeHandlerWith(t, &fakeVerifications{send: oneSendPerIP(&keys)}, nil, httpapi.Options{IP: httpapi.ClientIP{TrustedProxyHops: 1}})
	send := func(email string, lines []string) int {
		st, _, _ := serveLambda(t, h, events.APIGatewayProxyRequest{
			Resource: sendPath, Path: sendPath, HTTPMethod: "POST",
			Headers:           map[string]string{"X-Forwarded-For": lines[0]},
			MultiValueHeaders: map[string][]string{"X-Forwarded-For": lines},
			Body:              fmt.Sprintf(`{"target":"ANY","email":%q}`, email),
			RequestContext: events.APIGatewayProxyRequestContext{
				RequestID: "r", Stage: "prod",
				Identity: events.APIGatewayRequestIdentity{SourceIP: "130.176.0.1"},
			},
		})
		return st
	}
	if st := send("a@b.c", []string{"192.0.2.1"}); st != 200 {
		t.Fatalf("first: %d", st)
	}
	// A client-written first line, then the proxy's: still 192.0.2.1.
	if st := send("b@b.c", []string{"198.51.100.50", "192.0.2.1"}); st != 429 {
		t.Fatalf("spoofed first line: %d, want 429", st)
	}
	if st := send("c@b.c", []string{"192.0.2.1", "192.0.2.9"}); st != 200 {
		t.Fatalf("another client: %d, want 200", st)
	}
	if want := "192.0.2.1 192.0.2.1 192.0.2.9"; strings.Join(keys, " ") != want {
		t.Fatalf("IP keys handed to the service: %v, want %s", keys, want)
	}
}

// TestTrustedProxyHopsConfig: TRUSTED_PROXY_HOPS reaches the handler: behind
// the proxy, each client is counted under its own X-Forwarded-For entry, and
// a request without one is refused.
func TestTrustedProxyHopsConfig(t *testing.T) {
	s := apptest.New(t, map[string]string{"TRUSTED_PROXY_HOPS": "1", "IP_HOURLY_LIMIT": "1", "CAPTCHA_IP_THRESHOLD": "0"})
	for i, xff := range []string{"192.0.2.1", "192.0.2.2", ""} {
		want := 200
		if xff == "" {
			want = 500
		}
		body := fmt.Sprintf(`{"target":"ANY","email":"c%d@b.c"}`, i)
		if st, _, b := s.Do(t, "POST", sendPath, "130.176.0.1", body, map[string]string{"x-forwarded-for": xff}); st != want {
			t.Fatalf("X-Forwarded-For %q: %d %v, want %d", xff, st, b, want)
		}
	}
	// The refusal logs no IP key.
	if keys := logValues(t, s.Stdout.String(), "ip_key"); strings.Join(keys, " ") != "192.0.2.1 192.0.2.2 " {
		t.Fatalf("logged IP keys %q, want each client's entry", keys)
	}
}

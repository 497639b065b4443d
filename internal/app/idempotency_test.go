package app_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/verifykit/verifykit/internal/app"
	"github.com/verifykit/verifykit/internal/apptest"
	"github.com/verifykit/verifykit/internal/httpapi"
	"github.com/verifykit/verifykit/internal/openapitest"
)

// keyedDo serves one send with an Idempotency-Key and returns the raw answer
// (replays are compared byte for byte), checked against api/openapi.yaml.
func keyedDo(t *testing.T, s *apptest.Service, ip, key, body string) httpapi.Response {
	t.Helper()
	h := map[string]string{"content-type": "application/json"}
	if key != "" {
		h["idempotency-key"] = key
	}
	r := s.Handler.Serve(context.Background(), &httpapi.Request{Method: "POST", Path: sendPath, Header: h, Body: []byte(body), SourceIP: ip, RequestID: "test"})
	openapitest.Require(t, openapitest.Exchange{
		Method: "POST", Target: sendPath, RequestHeader: h, RequestBody: []byte(body),
		Status: r.Status, ResponseHeader: r.Header, ResponseBody: r.Body,
	})
	return r
}

// runIdempotencyHTTP is the whole Idempotency-Key behaviour through the
// handler, on either store.
func runIdempotencyHTTP(t *testing.T, s *apptest.Service) {
	const ip, body = "198.51.100.7", `{"target":"ANY","phone_number":"+86 13800138000"}`
	first := keyedDo(t, s, ip, "key-1", body)
	if first.Status != 200 || first.Header["Idempotent-Replayed"] != "" {
		t.Fatalf("first: %d %v %s", first.Status, first.Header, first.Body)
	}
	again := keyedDo(t, s, ip, "key-1", body)
	if again.Status != 200 || string(again.Body) != string(first.Body) || again.Header["Idempotent-Replayed"] != "true" {
		t.Fatalf("retry: %d %v %s; want the first answer %s, replayed", again.Status, again.Header, again.Body, first.Body)
	}
	if n := len(s.Outbox.Messages()); n != 1 {
		t.Fatalf("%d messages sent, want 1", n)
	}
	// The log line says so, and the metrics count it as neither a send nor
	// a refusal.
	if !strings.Contains(s.Stdout.String(), `"outcome":"replayed"`) || !strings.Contains(s.Stdout.String(), `"idempotency":"stored"`) {
		t.Errorf("log lines lack the replay and the stored answer:\n%s", s.Stdout.String())
	}

	// The same bytes are the same body: other bytes are another body.
	other := keyedDo(t, s, ip, "key-1", strings.Replace(body, ",", ", ", 1))
	if other.Status != 422 || !strings.Contains(string(other.Body), `"error":"idempotency_key_reused","error_code":4022`) {
		t.Fatalf("another body: %d %s", other.Status, other.Body)
	}
	for _, bad := range []string{strings.Repeat("k", 256), "a key", "ключ"} {
		if r := keyedDo(t, s, ip, bad, body); r.Status != 400 || !strings.Contains(string(r.Body), `"invalid_request"`) {
			t.Errorf("key %q: %d %s, want invalid_request", bad, r.Status, r.Body)
		}
	}
	// An empty header is a bad key too, not an absent one.
	r := s.Handler.Serve(context.Background(), &httpapi.Request{Method: "POST", Path: sendPath, Header: map[string]string{"idempotency-key": ""}, Body: []byte(body), SourceIP: ip})
	if r.Status != 400 {
		t.Errorf("empty key: %d %s, want 400", r.Status, r.Body)
	}

	// A refusal is kept and replayed with its Retry-After, even after the
	// cooldown ended (a request without a key shows that it did).
	s.Clock.Advance(10 * time.Second)
	refused := keyedDo(t, s, ip, "key-2", body)
	if refused.Status != 429 || refused.Header["Retry-After"] != "50" {
		t.Fatalf("in cooldown: %d %v %s", refused.Status, refused.Header, refused.Body)
	}
	s.Clock.Advance(2 * time.Minute)
	replayed := keyedDo(t, s, ip, "key-2", body)
	if replayed.Status != 429 || replayed.Header["Retry-After"] != "50" || string(replayed.Body) != string(refused.Body) || replayed.Header["Idempotent-Replayed"] != "true" {
		t.Fatalf("refusal replay: %d %v %s; want %s again", replayed.Status, replayed.Header, replayed.Body, refused.Body)
	}
	if fresh := keyedDo(t, s, ip, "", body); fresh.Status != 200 {
		t.Fatalf("without a key after the cooldown: %d %s", fresh.Status, fresh.Body)
	}
	if n := len(s.Outbox.Messages()); n != 2 {
		t.Fatalf("%d messages sent, want 2", n)
	}

	// The key belongs to the client that sent it: from another IP it is a
	// different key (this one meets the cooldown of the send just made).
	if r := keyedDo(t, s, "198.51.100.8", "key-1", body); r.Status != 429 || r.Header["Idempotent-Replayed"] != "" {
		t.Fatalf("key-1 from another IP: %d %v %s", r.Status, r.Header, r.Body)
	}
}

func TestIdempotencyLocal(t *testing.T) {
	runIdempotencyHTTP(t, apptest.New(t, noGate))
}

func TestIdempotencyDynamo(t *testing.T) {
	runIdempotencyHTTP(t, apptest.NewDynamo(t, noGate, nil, app.Options{DynamoOptions: patient}))
}

// TestConcurrentSendsWithOneKey: a client that fires its retries at once
// still causes exactly one SMS. Every answer is the one send's (first or
// replayed) or idempotency_key_in_progress while it runs (or, when the
// machine is too loaded for DynamoDB Local to answer in time,
// service_unavailable).
func TestConcurrentSendsWithOneKey(t *testing.T) {
	s := apptest.NewDynamo(t, noGate, nil, app.Options{DynamoOptions: patient})
	const n = 20
	body := `{"target":"ANY","phone_number":"+86 13900139000"}`
	var mu sync.Mutex
	answers := map[string]int{}
	concurrently(t, n, func(int) (int, map[string]any) {
		r := keyedDo(t, s, "198.51.100.9", "retry-storm", body)
		mu.Lock()
		defer mu.Unlock()
		answers[fmt.Sprintf("%d %s retry-after=%s", r.Status, r.Body, r.Header["Retry-After"])]++
		return r.Status, nil
	})
	if n := len(s.Outbox.Messages()); n != 1 {
		t.Fatalf("%d SMS sent, want 1 (answers %v)\n%s", n, answers, s.Stdout.String())
	}
	var sent string
	total := 0
	for a, c := range answers {
		switch {
		case strings.HasPrefix(a, "200 "):
			if sent != "" && a != sent {
				t.Errorf("two different 200 answers: %s and %s", sent, a)
			}
			sent = a
		case strings.HasPrefix(a, "409 ") && strings.Contains(a, `"idempotency_key_in_progress","error_code":4091`) && strings.HasSuffix(a, "retry-after=1"):
		case strings.HasPrefix(a, "503 "):
			// A DynamoDB call that timed out on a loaded machine fails
			// closed: nothing sent, which is all this test asks of it.
		default:
			t.Errorf("unexpected answer %s", a)
		}
		total += c
	}
	if t.Failed() {
		t.Logf("log:\n%s", s.Stdout.String())
	}
	if sent == "" || total != n {
		t.Fatalf("answers %v: want the send's 200 (and 409s while it ran)", answers)
	}
	// Once it finished, the key replays that answer.
	if r := keyedDo(t, s, "198.51.100.9", "retry-storm", body); r.Status != 200 || r.Header["Idempotent-Replayed"] != "true" || !strings.Contains(sent, string(r.Body)) {
		t.Fatalf("after the storm: %d %v %s, want %s", r.Status, r.Header, r.Body, sent)
	}
}

// TestSampleEventIdempotencyKey replays the sample send with an
// Idempotency-Key twice against one store: the same answer, marked as a
// replay, and one message.
func TestSampleEventIdempotencyKey(t *testing.T) {
	raw, err := os.ReadFile("../../events/rest-send-idempotency-key.json")
	if err != nil {
		t.Fatal(err)
	}
	s := apptest.New(t, nil)
	var answers []events.APIGatewayProxyResponse
	for range 2 {
		out, err := s.Handler.HandleLambda(context.Background(), raw)
		if err != nil {
			t.Fatal(err)
		}
		answers = append(answers, out.(events.APIGatewayProxyResponse))
	}
	first, second := answers[0], answers[1]
	if first.StatusCode != 200 || second.StatusCode != 200 || second.Body != first.Body {
		t.Fatalf("answers %d %s and %d %s, want one 200 twice", first.StatusCode, first.Body, second.StatusCode, second.Body)
	}
	if first.Headers["Idempotent-Replayed"] != "" || second.Headers["Idempotent-Replayed"] != "true" {
		t.Fatalf("Idempotent-Replayed: %q then %q, want absent then true", first.Headers["Idempotent-Replayed"], second.Headers["Idempotent-Replayed"])
	}
	if n := len(s.Outbox.Messages()); n != 1 {
		t.Fatalf("%d messages, want 1", n)
	}
}

package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/verifykit/verifykit/internal/app"
	"github.com/verifykit/verifykit/internal/apptest"
	"github.com/verifykit/verifykit/internal/dynamo/dynamotest"
	"github.com/verifykit/verifykit/internal/httpapi"
)

// serve runs one request through the handler from ip.
func benchServe(ctx context.Context, a *app.App, path, ip, body string) httpapi.Response {
	return a.Handler.Serve(ctx, &httpapi.Request{
		Method: "POST", Path: path, Header: map[string]string{"content-type": "application/json"},
		Body: []byte(body), SourceIP: ip, RequestID: "bench",
	})
}

// sendFor sends a code to email from ip and returns the verification_id and
// the code (read from the outbox).
func benchSendFor(t *testing.T, a *app.App, email, target, ip string) (id, code string) {
	t.Helper()
	resp := benchServe(context.Background(), a, sendRoute, ip, fmt.Sprintf(`{"target":%q,"email":%q}`, target, email))
	if resp.Status != 200 {
		t.Fatalf("send to %s: %d %s", email, resp.Status, resp.Body)
	}
	var r struct {
		ID string `json:"verification_id"`
	}
	if err := json.Unmarshal(resp.Body, &r); err != nil {
		t.Fatal(err)
	}
	msgs := a.Outbox.Messages()
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].To == email {
			return r.ID, msgs[i].Code
		}
	}
	t.Fatalf("no message to %s in the outbox", email)
	return "", ""
}

// benchServeKeyed is benchServe with an Idempotency-Key.
func benchServeKeyed(ctx context.Context, a *app.App, ip, key, body string) httpapi.Response {
	return a.Handler.Serve(ctx, &httpapi.Request{
		Method: "POST", Path: sendRoute, Header: map[string]string{"content-type": "application/json", "idempotency-key": key},
		Body: []byte(body), SourceIP: ip, RequestID: "bench",
	})
}

// benchSMSFor sends a code to phone from ip, like benchSendFor.
func benchSMSFor(t *testing.T, a *app.App, phone, ip string) (id, code string) {
	t.Helper()
	resp := benchServe(context.Background(), a, sendRoute, ip, fmt.Sprintf(`{"target":"ANY","phone_number":%q}`, phone))
	if resp.Status != 200 {
		t.Fatalf("send to %s: %d %s", phone, resp.Status, resp.Body)
	}
	var r struct {
		ID string `json:"verification_id"`
	}
	if err := json.Unmarshal(resp.Body, &r); err != nil {
		t.Fatal(err)
	}
	msgs := a.Outbox.Messages()
	return r.ID, msgs[len(msgs)-1].Code
}

func benchVerifyBody(id, code string) string {
	return fmt.Sprintf(`{"verification_id":%q,"verification_code":%q}`, id, code)
}

// TestRoundTrips counts the DynamoDB calls each kind of request makes through
// the whole service (handler, domain, store) and pins them: one transaction
// on the send path (an ANY send also looks the user up, concurrently with
// it; the SMS pumping counters are items of the same transaction); a read
// and one transaction for a verify, right or wrong (count first, then
// compare; a right SMS code's prefix counts it in that transaction); one
// transaction for a captcha image, one UpdateItem for a wrong captcha answer
// and two for a right one. Counts are not timing, so asserting
// them is safe; `make bench` prints them into BENCHMARKS.md.
func TestRoundTrips(t *testing.T) {
	var calls dynamotest.CallCounter
	a := apptest.NewDynamo(t, map[string]string{"PUMPING_UNVERIFIED_LIMIT": "1", "SMS_PREFIX_BLOCK": "8613700"}, []string{"existing@example.com", "+8613900138000"},
		app.Options{DynamoOptions: []func(*dynamodb.Options){calls.Option()}}).App
	ctx := context.Background()
	type counts = map[string]int

	var rightID, rightCode, wrongID, captchaToken, smsID, smsCode string
	tests := []struct {
		name string
		do   func() httpapi.Response
		want counts
	}{
		{"send ANY (new address)", func() httpapi.Response {
			return benchServe(ctx, a, sendRoute, "192.0.2.1", `{"target":"ANY","email":"rt-any@example.com"}`)
		}, counts{"TransactWriteItems": 1, "GetItem": 1}},
		{"send USER (existing user)", func() httpapi.Response {
			return benchServe(ctx, a, sendRoute, "192.0.2.2", `{"target":"USER","email":"existing@example.com"}`)
		}, counts{"TransactWriteItems": 1}},
		{"send NOT_USER (new address)", func() httpapi.Response {
			return benchServe(ctx, a, sendRoute, "192.0.2.3", `{"target":"NOT_USER","email":"rt-new@example.com"}`)
		}, counts{"TransactWriteItems": 1}},
		{"send USER, no such user (refused; spends the IP budget)", func() httpapi.Response {
			return benchServe(ctx, a, sendRoute, "192.0.2.4", `{"target":"USER","email":"rt-nobody@example.com"}`)
		}, counts{"TransactWriteItems": 1, "UpdateItem": 1}},
		// USER, not ANY: a refused ANY send also makes its user lookup
		// (Reserve waits for it), which this case does not count.
		{"send USER in cooldown (refused)", func() httpapi.Response {
			return benchServe(ctx, a, sendRoute, "192.0.2.5", `{"target":"USER","email":"existing@example.com"}`)
		}, counts{"TransactWriteItems": 1}},
		// An Idempotency-Key's claim rides in the send's transaction: a first
		// use costs one write more (the answer), a replay one round trip (the
		// cancelled transaction returns the stored answer).
		{"send NOT_USER with Idempotency-Key (first use)", func() httpapi.Response {
			return benchServeKeyed(ctx, a, "192.0.2.7", "rt-1", `{"target":"NOT_USER","email":"rt-idem@example.com"}`)
		}, counts{"TransactWriteItems": 1, "UpdateItem": 1}},
		{"the same send again (replay)", func() httpapi.Response {
			return benchServeKeyed(ctx, a, "192.0.2.7", "rt-1", `{"target":"NOT_USER","email":"rt-idem@example.com"}`)
		}, counts{"TransactWriteItems": 1}},
		{"send NOT_USER in cooldown with a new key (refused; kept)", func() httpapi.Response {
			return benchServeKeyed(ctx, a, "192.0.2.7", "rt-2", `{"target":"NOT_USER","email":"rt-idem@example.com"}`)
		}, counts{"TransactWriteItems": 1, "PutItem": 1}},
		{"that refusal again (replay)", func() httpapi.Response {
			return benchServeKeyed(ctx, a, "192.0.2.7", "rt-2", `{"target":"NOT_USER","email":"rt-idem@example.com"}`)
		}, counts{"TransactWriteItems": 1}},
		{"send ANY with Idempotency-Key (first use)", func() httpapi.Response {
			return benchServeKeyed(ctx, a, "192.0.2.8", "rt-3", `{"target":"ANY","email":"rt-idem-any@example.com"}`)
		}, counts{"GetItem": 1, "TransactWriteItems": 1, "UpdateItem": 1}},
		// The SMS pumping counters (the prefix's breaker, a shard of the
		// global budget) are items of the same transaction.
		{"send SMS USER (breaker and budget counted)", func() httpapi.Response {
			return benchServe(ctx, a, sendRoute, "192.0.2.17", `{"target":"USER","phone_number":"+8613900138000"}`)
		}, counts{"TransactWriteItems": 1}},
		{"send SMS NOT_USER to a suspect prefix (refused)", func() httpapi.Response {
			return benchServe(ctx, a, sendRoute, "192.0.2.18", `{"target":"NOT_USER","phone_number":"+8613800138002"}`)
		}, counts{"TransactWriteItems": 1}},
		{"send SMS NOT_USER to an operator-blocked prefix", func() httpapi.Response {
			return benchServe(ctx, a, sendRoute, "192.0.2.19", `{"target":"NOT_USER","phone_number":"+8613700138000"}`)
		}, counts{}},
		{"verify right code", func() httpapi.Response {
			return benchServe(ctx, a, verifyRoute, "192.0.2.6", benchVerifyBody(rightID, rightCode))
		}, counts{"GetItem": 1, "TransactWriteItems": 1}},
		{"verify wrong code", func() httpapi.Response {
			return benchServe(ctx, a, verifyRoute, "192.0.2.6", benchVerifyBody(wrongID, "000000x"))
		}, counts{"GetItem": 1, "TransactWriteItems": 1}},
		{"verify a used code", func() httpapi.Response {
			return benchServe(ctx, a, verifyRoute, "192.0.2.6", benchVerifyBody(rightID, rightCode))
		}, counts{"GetItem": 1}},
		{"captcha image", func() httpapi.Response {
			resp := benchServe(ctx, a, "/auth/v1/captcha/data", "192.0.2.7", `{}`)
			var img struct{ Token string }
			_ = json.Unmarshal(resp.Body, &img)
			captchaToken = img.Token
			return resp
		}, counts{"TransactWriteItems": 1}},
		{"captcha answer wrong", func() httpapi.Response {
			return benchServe(ctx, a, "/auth/v1/captcha/data/verify", "192.0.2.7", fmt.Sprintf(`{"token":%q,"key":"-"}`, captchaToken))
		}, counts{"UpdateItem": 1}},
		{"captcha answer right", func() httpapi.Response {
			return benchServe(ctx, a, "/auth/v1/captcha/data/verify", "192.0.2.7", fmt.Sprintf(`{"token":%q,"key":%q}`, captchaToken, devAnswer(a, captchaToken)))
		}, counts{"UpdateItem": 2}},
		// A right SMS code also counts as verified for its prefix, in the
		// verify's own transaction.
		{"verify right SMS code", func() httpapi.Response {
			return benchServe(ctx, a, verifyRoute, "192.0.2.6", benchVerifyBody(smsID, smsCode))
		}, counts{"GetItem": 1, "TransactWriteItems": 1}},
	}
	rightID, rightCode = benchSendFor(t, a, "rt-verify@example.com", "ANY", "192.0.2.10")
	wrongID, _ = benchSendFor(t, a, "rt-wrong@example.com", "ANY", "192.0.2.11")
	smsID, smsCode = benchSMSFor(t, a, "+8613800138001", "192.0.2.12")
	// One unverified send makes prefix 8613800 suspect (limit 1).

	var report strings.Builder
	fmt.Fprintf(&report, "DynamoDB calls per request (through the handler, DynamoDB Local):\n")
	for _, tc := range tests {
		calls.Reset()
		resp := tc.do()
		got := calls.Counts()
		fmt.Fprintf(&report, "  %-56s %3d  %-36s -> %d\n", tc.name, countTotal(got), formatCounts(got), resp.Status)
		if formatCounts(got) != formatCounts(tc.want) {
			t.Errorf("%s: calls %s, want %s (answer %d %s)", tc.name, formatCounts(got), formatCounts(tc.want), resp.Status, resp.Body)
		}
	}
	t.Log("\n" + report.String())
}

// devAnswer is the answer of the captcha token, from the local outbox.
func devAnswer(a *app.App, token string) string {
	var out struct {
		Captchas []struct{ Token, Answer string }
	}
	raw, _ := json.Marshal(a.DevOutbox())
	_ = json.Unmarshal(raw, &out)
	for _, c := range out.Captchas {
		if c.Token == token {
			return c.Answer
		}
	}
	return ""
}

func countTotal(c map[string]int) int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// format writes counts in a stable order: "GetItem=1 TransactWriteItems=1".
func formatCounts(c map[string]int) string {
	ops := make([]string, 0, len(c))
	for op, n := range c {
		if n > 0 {
			ops = append(ops, fmt.Sprintf("%s=%d", op, n))
		}
	}
	sort.Strings(ops)
	return strings.Join(ops, " ")
}

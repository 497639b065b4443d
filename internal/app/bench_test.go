package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/verifykit/verifykit/internal/app"
	"github.com/verifykit/verifykit/internal/dynamo"
	"github.com/verifykit/verifykit/internal/httpapi"
	"github.com/verifykit/verifykit/internal/verification"
)

// The in-process cost of a request: the whole handler (routing, strict
// decoding, validation, keyed hashes, the store, the sender, the response
// and the log line) in local mode, with the in-memory store and the outbox
// sender writing to io.Discard. `make bench` runs these with -benchmem and
// records the figures in BENCHMARKS.md.

const (
	sendRoute   = "/auth/v1/verification"
	verifyRoute = "/auth/v1/verification/verify"
)

// benchApp builds the local service with default limits; every iteration
// sends from its own IP to its own target, so no limit ever refuses.
func benchApp(b *testing.B, more ...string) *app.App {
	b.Helper()
	env := map[string]string{
		"HMAC_KEY": "dGVzdC1obWFjLWtleS10ZXN0LWhtYWMta2V5LXRlc3QtaG1hYw==",
		// The SMS pumping counters are kept (each send counts in its
		// prefix's breaker and a budget shard), but set high enough never
		// to refuse the benchmark's unverified sends.
		"SMS_HOURLY_BUDGET":        "1000000",
		"PUMPING_UNVERIFIED_LIMIT": "1000000",
	}
	for i := 0; i+1 < len(more); i += 2 {
		env[more[i]] = more[i+1]
	}
	cfg, err := app.Load(func(k string) string { return env[k] })
	if err != nil {
		b.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, app.Options{Stdout: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// benchIP is a distinct IPv4 address for each i.
func benchIP(i int) string {
	return "10." + strconv.Itoa(i>>16&255) + "." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255)
}

func benchSendRequests(n int, body func(i int) string) []*httpapi.Request {
	reqs := make([]*httpapi.Request, n)
	for i := range reqs {
		reqs[i] = &httpapi.Request{
			Method:    "POST",
			Path:      sendRoute,
			Header:    map[string]string{"content-type": "application/json"},
			Body:      []byte(body(i)),
			SourceIP:  benchIP(i),
			RequestID: "bench",
		}
	}
	return reqs
}

func benchEmailBody(i int) string {
	return `{"target":"ANY","email":"user` + strconv.Itoa(i) + `@example.com"}`
}

func benchPhoneBody(i int) string {
	// 139 numbers are mainland China mobiles; 8 digits after the prefix.
	return `{"target":"ANY","phone_number":"+86 139` + benchPad8(i) + `"}`
}

func benchPad8(i int) string {
	s := strconv.Itoa(i % 100000000)
	for len(s) < 8 {
		s = "0" + s
	}
	return s
}

func benchSend(b *testing.B, body func(i int) string, env ...string) {
	a := benchApp(b, env...)
	reqs := benchSendRequests(b.N, body)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if resp := a.Handler.Serve(ctx, reqs[i]); resp.Status != 200 {
			b.Fatalf("send %d: %d %s", i, resp.Status, resp.Body)
		}
	}
}

// BenchmarkSendEmail is one accepted send of an email code (target ANY).
func BenchmarkSendEmail(b *testing.B) { benchSend(b, benchEmailBody) }

// BenchmarkLambdaSendEmail is BenchmarkSendEmail as the Lambda runtime
// hands it over: a REST API event (events/rest-send-email-any.json, with
// its own address and source IP) through aws-lambda-go's handler, read,
// served and answered as bytes. The difference from BenchmarkSendEmail is
// what the event and the answer cost.
func BenchmarkLambdaSendEmail(b *testing.B) {
	a := benchApp(b)
	raw, err := os.ReadFile("../../events/rest-send-email-any.json")
	if err != nil {
		b.Fatal(err)
	}
	var event map[string]any
	if err := json.Unmarshal(raw, &event); err != nil {
		b.Fatal(err)
	}
	identity := event["requestContext"].(map[string]any)["identity"].(map[string]any)
	payloads := make([][]byte, b.N)
	for i := range payloads {
		event["body"], identity["sourceIp"] = benchEmailBody(i), benchIP(i)
		if payloads[i], err = json.Marshal(event); err != nil {
			b.Fatal(err)
		}
	}
	h := lambda.NewHandler(a)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		out, err := h.Invoke(ctx, payloads[i])
		if err != nil || !bytes.HasPrefix(out, []byte(`{"statusCode":200,`)) {
			b.Fatalf("send %d: %v %s", i, err, out)
		}
	}
}

// BenchmarkSendPhone is one accepted send of an SMS code (target ANY): the
// phone-number library's validation on top of the email path.
func BenchmarkSendPhone(b *testing.B) { benchSend(b, benchPhoneBody) }

// BenchmarkSendPhoneNoPumping is BenchmarkSendPhone with the SMS pumping
// defences off: the difference is what the breaker and the budget cost a
// send in process.
func BenchmarkSendPhoneNoPumping(b *testing.B) {
	benchSend(b, benchPhoneBody, "SMS_HOURLY_BUDGET", "0", "PUMPING_UNVERIFIED_LIMIT", "0")
}

// BenchmarkVerify is one successful verify (a right code, an ES256 token
// signed). The sends that provide the codes run before the timer starts.
func BenchmarkVerify(b *testing.B) {
	a := benchApp(b)
	ctx := context.Background()
	reqs := make([]*httpapi.Request, 0, b.N)
	sends := benchSendRequests(b.N, benchEmailBody)
	// The outbox keeps the latest 1000 messages: read the codes in batches.
	ids := map[string]string{} // recipient -> verification_id
	for start := 0; start < b.N; start += 1000 {
		end := min(start+1000, b.N)
		for i := start; i < end; i++ {
			resp := a.Handler.Serve(ctx, sends[i])
			if resp.Status != 200 {
				b.Fatalf("send %d: %d %s", i, resp.Status, resp.Body)
			}
			var r struct {
				ID string `json:"verification_id"`
			}
			if err := json.Unmarshal(resp.Body, &r); err != nil {
				b.Fatal(err)
			}
			ids["user"+strconv.Itoa(i)+"@example.com"] = r.ID
		}
		for _, m := range a.Outbox.Messages() {
			id, ok := ids[m.To]
			if !ok {
				continue
			}
			delete(ids, m.To)
			body, _ := json.Marshal(map[string]string{"verification_id": id, "verification_code": m.Code})
			reqs = append(reqs, &httpapi.Request{
				Method: "POST", Path: verifyRoute, Header: map[string]string{"content-type": "application/json"},
				Body: body, SourceIP: benchAddr("10.255", len(reqs)), RequestID: "bench", // VERIFY_IP_HOURLY_LIMIT
			})
		}
	}
	if len(reqs) != b.N {
		b.Fatalf("prepared %d verifies, want %d", len(reqs), b.N)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if resp := a.Handler.Serve(ctx, reqs[i]); resp.Status != 200 {
			b.Fatalf("verify %d: %d %s", i, resp.Status, resp.Body)
		}
	}
}

// BenchmarkVerifyWrong is one wrong code: decoding, the id's MAC check, the
// store's attempt count and the error envelope (no token is signed). Each
// code takes at most MAX_VERIFY_ATTEMPTS-1 wrong guesses so it stays alive.
func BenchmarkVerifyWrong(b *testing.B) {
	a := benchApp(b)
	ctx := context.Background()
	const perCode = 4
	n := b.N/perCode + 1
	sends := benchSendRequests(n, benchEmailBody)
	reqs := make([]*httpapi.Request, 0, b.N)
	for i := 0; len(reqs) < b.N; i++ {
		resp := a.Handler.Serve(ctx, sends[i])
		var r struct {
			ID string `json:"verification_id"`
		}
		if err := json.Unmarshal(resp.Body, &r); err != nil || resp.Status != 200 {
			b.Fatalf("send %d: %d %s", i, resp.Status, resp.Body)
		}
		for k := 0; k < perCode && len(reqs) < b.N; k++ {
			// Codes are 6 digits; a 7-digit guess is always wrong.
			body, _ := json.Marshal(map[string]string{"verification_id": r.ID, "verification_code": "1234567"})
			reqs = append(reqs, &httpapi.Request{
				Method: "POST", Path: verifyRoute, Header: map[string]string{"content-type": "application/json"},
				Body: body, SourceIP: benchAddr("10.255", len(reqs)), RequestID: "bench", // VERIFY_IP_HOURLY_LIMIT
			})
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if resp := a.Handler.Serve(ctx, reqs[i]); resp.Status != 400 {
			b.Fatalf("verify %d: %d %s", i, resp.Status, resp.Body)
		}
	}
}

// BenchmarkOutboxSend is the local sender alone, as BenchmarkSendEmail uses
// it (templates rendered, the message kept among the latest 1000 and
// printed to io.Discard): the share of a local send that is not the
// service's own.
func BenchmarkOutboxSend(b *testing.B) {
	a := benchApp(b)
	ctx := context.Background()
	m := verification.Message{Channel: verification.Email, To: "user@example.com", Code: "123456", TTL: 10 * time.Minute}
	for range 1000 { // a full outbox, as in a long run
		if err := a.Outbox.Send(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Outbox.Send(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

// nopDynamo answers every call at once with an empty success: what is left
// of the DynamoDB store's cost is building its requests.
type nopDynamo struct{}

func (nopDynamo) TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	return &dynamodb.TransactWriteItemsOutput{}, nil
}

func (nopDynamo) UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return &dynamodb.UpdateItemOutput{}, nil
}

func (nopDynamo) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return &dynamodb.PutItemOutput{}, nil
}

// GetItem answers with the live code of BenchmarkDynamoConsume.
func (nopDynamo) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return &dynamodb.GetItemOutput{Item: map[string]types.AttributeValue{
		"nonce":      &types.AttributeValueMemberS{Value: benchNonce},
		"code_hash":  &types.AttributeValueMemberS{Value: benchCodeHash},
		"attempts":   &types.AttributeValueMemberN{Value: "0"},
		"expires_at": &types.AttributeValueMemberN{Value: "9999999999999"},
	}}, nil
}

const (
	benchNonce    = "AAECAwQFBgcICQoLDA0ODw"
	benchCodeHash = "PwAsSDTFFlQRwikQZdz1lV9gYJAgOVAu7Jte_b5ioQU"
)

func benchDynamoStore(b *testing.B) *dynamo.Store {
	b.Helper()
	cfg, err := app.Load(func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	s, err := dynamo.New(nopDynamo{}, dynamo.Options{Table: "verification", UsersTable: "users", Limits: app.Limits(cfg), Pumping: app.Pumping(cfg)})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkDynamoReserveSMS is BenchmarkDynamoReserve for an SMS send: the
// transaction also carries the prefix's breaker item and a budget shard.
func BenchmarkDynamoReserveSMS(b *testing.B) {
	s := benchDynamoStore(b)
	cfg, _ := app.Load(func(string) string { return "" })
	p := app.Pumping(cfg)
	now := time.Now()
	r := verification.Reservation{
		Handle: "KiSye9XA5NnQQwFfQ2UY9Q", IP: "192.0.2.1", Nonce: "AAECAwQFBgcICQoLDA0ODw",
		CodeHash: "PwAsSDTFFlQRwikQZdz1lV9gYJAgOVAu7Jte_b5ioQU", Identity: "+8613800138000",
		Channel: verification.SMS, Target: verification.TargetAny, Now: now, ExpiresAt: now.Add(10 * time.Minute),
		Prefix: p.Counted("+8613800138000"), CountBudget: true, BudgetShard: 3,
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Reserve(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDynamoReserve is the DynamoDB store's own CPU cost of a send:
// building the TransactWriteItems input (the SDK's serialising, signing and
// the round trip are not in it).
func BenchmarkDynamoReserve(b *testing.B) {
	s := benchDynamoStore(b)
	now := time.Now()
	r := verification.Reservation{
		Handle: "KiSye9XA5NnQQwFfQ2UY9Q", IP: "192.0.2.1", Nonce: "AAECAwQFBgcICQoLDA0ODw",
		CodeHash: "PwAsSDTFFlQRwikQZdz1lV9gYJAgOVAu7Jte_b5ioQU", Identity: "user@example.com",
		Channel: verification.Email, Target: verification.TargetAny, Now: now, ExpiresAt: now.Add(10 * time.Minute),
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Reserve(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDynamoConsume is the store's own CPU cost of a verify of a right
// code: its GetItem and its transaction (the SDK's work not included).
func BenchmarkDynamoConsume(b *testing.B) {
	s := benchDynamoStore(b)
	a := verification.Attempt{
		Handle: "KiSye9XA5NnQQwFfQ2UY9Q", Nonce: benchNonce, CodeHash: benchCodeHash,
		IP: "192.0.2.1", Now: time.Now(), MaxAttempts: 5,
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Consume(ctx, a); err != nil {
			b.Fatal(err)
		}
	}
}

// benchAddr is the i-th address under a /16 prefix, so that a benchmark's
// requests do not share one IP's limits.
func benchAddr(prefix string, i int) string {
	return fmt.Sprintf("%s.%d.%d", prefix, i/256%256, i%256)
}

package dynamo

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/verifykit/verifykit/internal/captcha"
	"github.com/verifykit/verifykit/internal/verification"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/requests.golden.json")

// wireRecorder is the HTTP client of a real *dynamodb.Client: it keeps the
// body of every request the SDK sends and answers each operation with a
// canned body, so the store's requests are seen exactly as they go out.
type wireRecorder struct {
	mu      sync.Mutex // an ANY send's user lookup runs beside its transaction
	bodies  [][]byte
	lookups [][]byte // the user lookups of ANY sends, in no fixed order
	inOrder bool     // record user lookups among bodies (an Exists call of its own)
	getItem string   // GetItem's answer
	cancel  string   // when set, TransactWriteItems answers this cancellation once
}

func (w *wireRecorder) Do(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	op := strings.TrimPrefix(req.Header.Get("X-Amz-Target"), "DynamoDB_20120810.")
	w.mu.Lock()
	defer w.mu.Unlock()
	status, answer := 200, "{}"
	if op == "GetItem" && bytes.Contains(body, []byte(`"TableName":"users"`)) && !w.inOrder {
		// The user lookup of an ANY send runs beside its transaction, so in
		// no fixed order: kept apart, and compared with the Exists request
		// the scenario records on its own.
		w.lookups = append(w.lookups, body)
		return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/x-amz-json-1.0"}}, Body: io.NopCloser(strings.NewReader(answer)), Request: req}, nil
	}
	w.bodies = append(w.bodies, append([]byte(`{"op":"`+op+`","body":`), append(body, '}')...))
	switch op {
	case "GetItem":
		answer = w.getItem
	case "UpdateItem":
		answer = `{"Attributes":{"attempts":{"N":"1"},"answer_hash":{"S":"right"}}}`
	case "TransactWriteItems":
		if w.cancel != "" {
			status, answer, w.cancel = 400, w.cancel, ""
		}
	}
	return &http.Response{
		StatusCode: status,
		Header:     http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		Body:       io.NopCloser(strings.NewReader(answer)),
		Request:    req,
	}, nil
}

// TestWireRequests runs a fixed scenario - every kind of request and every
// expression shape - through the SDK's own serializer and compares what goes
// out with testdata/requests.golden.json, recorded from the store before its
// expressions were written as text. The expressions are compared resolved
// (each #name and :value put back in place, see resolve), because their
// placeholders were numbered (#3, :7) by the SDK's builder and are named
// now; everything else of a request is compared as sent.
func TestWireRequests(t *testing.T) {
	now := time.UnixMilli(100_000_000)
	w := &wireRecorder{getItem: fmt.Sprintf(`{"Item":{"nonce":{"S":"n"},"code_hash":{"S":"c"},"attempts":{"N":"0"},"expires_at":{"N":"%d"},"channel":{"S":"sms"},"identity":{"S":"+8613800138000"}}}`, now.Add(time.Minute).UnixMilli())}
	db := dynamodb.New(dynamodb.Options{
		Region: "us-east-1", BaseEndpoint: aws.String("http://dynamodb.invalid"),
		Credentials: aws.AnonymousCredentials{}, HTTPClient: w, RetryMaxAttempts: 1,
		IdempotencyTokenProvider: fixedToken{},
	})
	s, err := New(db, Options{Table: "codes", UsersTable: "users", Limits: smallLimits})
	if err != nil {
		t.Fatal(err)
	}
	r := verification.Reservation{
		Handle: "h", IP: "ip1", Nonce: "n", CodeHash: "c", Identity: "a", Channel: verification.Email,
		Target: verification.TargetAny, Now: now, ExpiresAt: now.Add(10 * time.Minute), CaptchaExp: now.Add(time.Hour),
	}
	withToken := r
	withToken.CaptchaID, withToken.Require = "k", verification.RequireUser
	noUser := r
	noUser.Require, noUser.Target = verification.RequireNoUser, verification.TargetNotUser
	ctx := context.Background()
	for _, r := range []verification.Reservation{r, withToken, noUser} {
		if _, err := s.Reserve(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Release(ctx, r); err != nil {
		t.Fatal(err)
	}
	// A wrong and a right code: each a read and a transaction.
	for _, hash := range []string{"x", "c"} {
		_, _ = s.Consume(ctx, verification.Attempt{Handle: "h", Nonce: "n", CodeHash: hash, IP: "ip1", Now: now, MaxAttempts: 5})
	}
	if err := s.PutChallenge(ctx, captcha.Challenge{ID: "c", AnswerHash: "right", ExpiresAt: now.Add(time.Minute), IP: "ip1", Now: now}); err != nil {
		t.Fatal(err)
	}
	// A wrong answer (its count), a right one (its count and the solve).
	_ = s.SolveChallenge(ctx, captcha.Solve{ID: "c", AnswerHash: "wrong", Now: now, MaxAttempts: 3})
	_ = s.SolveChallenge(ctx, captcha.Solve{ID: "c", AnswerHash: "right", Now: now, MaxAttempts: 3})
	w.inOrder = true
	if _, err := s.Exists(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	w.inOrder = false
	exists := w.bodies[len(w.bodies)-1]
	if len(w.lookups) == 0 {
		t.Fatal("no ANY send looked its user up")
	}
	for _, l := range w.lookups {
		if want := []byte(`{"op":"GetItem","body":` + string(l) + `}`); !bytes.Equal(want, exists) {
			t.Fatalf("an ANY send's user lookup %s, want the Exists request %s", want, exists)
		}
	}
	// A user refusal spends the IP budget with the IP's update alone, under
	// the gate without a token and without it with one.
	for _, r := range []verification.Reservation{withToken, func() verification.Reservation { r := r; r.Require = verification.RequireUser; return r }()} {
		reasons := `{"Code":"None"},{"Code":"None"},{"Code":"ConditionalCheckFailed"}`
		if r.CaptchaID != "" {
			reasons = `{"Code":"None"},{"Code":"None"},{"Code":"None"},{"Code":"ConditionalCheckFailed"}`
		}
		w.cancel = `{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"cancelled","CancellationReasons":[` + reasons + `]}`
		if _, err := s.Reserve(ctx, r); verification.KindOf(err) != verification.KindUserNotFound {
			t.Fatalf("user refusal: got %v", err)
		}
	}

	// With the SMS pumping defences: a send with the breaker and a full
	// budget shard, one with a token and a shard of one fewer slot, a right
	// SMS code that counts as verified; and the idempotency writes.
	p := verification.Pumping{Budget: 50, PrefixLength: 7, UnverifiedLimit: 20, Window: time.Hour}
	plain := s
	if s, err = New(db, Options{Table: "codes", UsersTable: "users", Limits: smallLimits, Pumping: p}); err != nil {
		t.Fatal(err)
	}
	sms := r
	sms.Channel, sms.Identity, sms.Prefix, sms.CountBudget = verification.SMS, "+8613800138000", "8613800", true
	smsToken := sms
	smsToken.CaptchaID, smsToken.BudgetShard = "k", p.Shards()-1
	if p.ShardCap(smsToken.BudgetShard) >= p.MaxShardCap() {
		t.Fatal("want a shard of one fewer slot")
	}
	keyed := verification.IdempotentSend{ID: "i", Fingerprint: "f", Owner: "n", Now: now, LeaseUntil: now.Add(time.Minute), KeepUntil: now.Add(time.Hour)}
	sms.Idempotency = &keyed
	for _, r := range []verification.Reservation{sms, smsToken} {
		if _, err := s.Reserve(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = s.Consume(ctx, verification.Attempt{Handle: "h", Nonce: "n", CodeHash: "c", IP: "ip1", Now: now, MaxAttempts: 5})
	for _, claimed := range []bool{true, false} {
		rec := verification.IdempotencyRecord{IdempotentSend: keyed, Claimed: claimed, Answer: verification.Answer{Status: 200, Body: []byte("{}"), RetryAfter: 1}}
		if err := s.RememberAnswer(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ReleaseKey(ctx, keyed); err != nil {
		t.Fatal(err)
	}

	// The shared parts are as New made them: no request wrote them.
	for _, tc := range []struct {
		served *Store
		p      verification.Pumping
	}{{plain, verification.Pumping{}}, {s, p}} {
		fresh, err := New(db, Options{Table: "codes", UsersTable: "users", Limits: smallLimits, Pumping: tc.p})
		if err != nil {
			t.Fatal(err)
		}
		fresh.pump.names.Store(tc.served.pump.names.Load()) // the cache of the latest bucket
		if !reflect.DeepEqual(tc.served, fresh) {
			t.Errorf("the store's expressions changed while it served requests (pumping %+v)", tc.p)
		}
	}

	var out bytes.Buffer
	out.WriteString("[\n")
	for i, b := range w.bodies {
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		resolveAll(t, v)
		line, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(line)
		if i < len(w.bodies)-1 {
			out.WriteString(",")
		}
		out.WriteString("\n")
	}
	out.WriteString("]\n")
	const golden = "testdata/requests.golden.json"
	if *updateGolden {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("request %d differs:\n got %s\nwant %s", i, gl[i], wl[i])
			}
		}
		t.Fatalf("got %d requests, want %d", len(gl)-3, len(wl)-3)
	}
}

// fixedToken stands in for the SDK's random ClientRequestToken.
type fixedToken struct{}

func (fixedToken) GetIdempotencyToken() (string, error) { return "token", nil }

var placeholderRef = regexp.MustCompile(`[#:][0-9A-Za-z_]+`)

// resolveAll replaces, in every object of the JSON value v that carries
// ExpressionAttributeNames or ExpressionAttributeValues, its expressions by
// their resolved text and drops the two maps. It fails the test when an
// expression refers to a placeholder the maps lack or a map holds one no
// expression uses (DynamoDB refuses both).
func resolveAll(t *testing.T, v any) {
	t.Helper()
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			resolveAll(t, e)
		}
	case map[string]any:
		for _, e := range v {
			resolveAll(t, e)
		}
		names, _ := v["ExpressionAttributeNames"].(map[string]any)
		values, _ := v["ExpressionAttributeValues"].(map[string]any)
		if names == nil && values == nil {
			return
		}
		used := map[string]bool{}
		for _, field := range []string{"UpdateExpression", "ConditionExpression", "ProjectionExpression"} {
			text, ok := v[field].(string)
			if !ok {
				continue
			}
			v[field] = placeholderRef.ReplaceAllStringFunc(text, func(p string) string {
				used[p] = true
				if p[0] == '#' {
					if n, ok := names[p].(string); ok {
						return n
					}
				} else if val, ok := values[p]; ok {
					b, _ := json.Marshal(val)
					return string(b)
				}
				t.Errorf("%s: %s is not defined in %q", field, p, text)
				return p
			})
		}
		for _, m := range []map[string]any{names, values} {
			for p := range m {
				if !used[p] {
					t.Errorf("%s is defined but unused in %v", p, v)
				}
			}
		}
		delete(v, "ExpressionAttributeNames")
		delete(v, "ExpressionAttributeValues")
	}
}

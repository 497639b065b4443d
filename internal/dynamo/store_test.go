package dynamo_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/verifykit/verifykit/internal/captcha"
	"github.com/verifykit/verifykit/internal/dynamo"
	"github.com/verifykit/verifykit/internal/dynamo/dynamotest"
	"github.com/verifykit/verifykit/internal/storetest"
	"github.com/verifykit/verifykit/internal/testenv"
	"github.com/verifykit/verifykit/internal/verification"
)

// newStore creates fresh tables from template.yaml on DynamoDB Local, puts
// the users in, and returns the store with its client.
func newStore(t *testing.T, endpoint string, limits verification.Limits, users []string, opts ...func(*dynamodb.Options)) (*dynamo.Store, *dynamodb.Client, dynamotest.Tables) {
	t.Helper()
	client, tables := dynamotest.StartTables(t, endpoint, opts...)
	for _, u := range users {
		_, err := client.PutItem(t.Context(), &dynamodb.PutItemInput{
			TableName: aws.String(tables["UsersTable"]),
			Item:      map[string]types.AttributeValue{"identity": &types.AttributeValueMemberS{Value: u}},
		})
		if err != nil {
			t.Fatalf("put user: %v", err)
		}
	}
	s, err := dynamo.New(client, dynamo.Options{Table: tables["VerificationTable"], UsersTable: tables["UsersTable"], Limits: limits})
	if err != nil {
		t.Fatalf("new store: %v", err)
	}
	return s, client, tables
}

func TestContract(t *testing.T) {
	endpoint := testenv.Get(t, testenv.DynamoDB)
	storetest.Run(t, func(t *testing.T, limits verification.Limits, p verification.Pumping, users []string) storetest.Stores {
		_, client, tables := newStore(t, endpoint, limits, users)
		s, err := dynamo.New(holding{client}, dynamo.Options{Table: tables["VerificationTable"], UsersTable: tables["UsersTable"], Limits: limits, Pumping: p})
		if err != nil {
			t.Fatal(err)
		}
		return storetest.Stores{Codes: s, Captcha: s}
	})
}

// holding lets the contract's count-first cases hold a request after each
// write (storetest.AfterWrite).
type holding struct{ dynamo.Client }

func (h holding) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	out, err := h.Client.TransactWriteItems(ctx, in, opts...)
	storetest.AfterWrite(ctx)
	return out, err
}

func (h holding) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	out, err := h.Client.UpdateItem(ctx, in, opts...)
	storetest.AfterWrite(ctx)
	return out, err
}

func (h holding) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	out, err := h.Client.PutItem(ctx, in, opts...)
	storetest.AfterWrite(ctx)
	return out, err
}

// seq numbers the reservations' nonces.
var seq atomic.Int64

func reservation(identity, ip string, now time.Time) verification.Reservation {
	nonce := fmt.Sprintf("n%d", seq.Add(1))
	return verification.Reservation{
		Handle: "h:" + identity, IP: ip, Nonce: nonce, CodeHash: "right:" + nonce,
		Identity: identity, Channel: verification.Email, Target: verification.TargetAny,
		CaptchaExp: storetest.T0.Add(time.Hour), Now: now, ExpiresAt: now.Add(10 * time.Minute),
	}
}

// errOf is the error of a Reserve, for cases about its refusals and calls.
func errOf(_ bool, err error) error { return err }

func attempt(r verification.Reservation, hash string, now time.Time) verification.Attempt {
	return verification.Attempt{Handle: r.Handle, Nonce: r.Nonce, CodeHash: hash, IP: "ip1", Now: now, MaxAttempts: 5}
}

// TestRoundTrips pins the DynamoDB calls of each operation: one round trip
// for any send; a read and a transaction for a verify, right or wrong.
func TestRoundTrips(t *testing.T) {
	endpoint := testenv.Get(t, testenv.DynamoDB)
	var calls dynamotest.CallCounter
	s, _, _ := newStore(t, endpoint, storetest.Limits(), []string{"alice"}, calls.Option())
	ctx := t.Context()
	t0 := storetest.T0
	m := time.Minute

	ok := reservation("a", "ip1", t0)
	verified := reservation("b", "ip1", t0)
	type counts = map[string]int
	for _, tc := range []struct {
		name string
		do   func() error
		want counts
	}{
		// An ANY send reads its user beside the transaction, refused or not.
		{"reserve ANY", func() error { return errOf(s.Reserve(ctx, ok)) }, counts{"GetItem": 1, "TransactWriteItems": 1}},
		{"reserve refused by cooldown", func() error { return errOf(s.Reserve(ctx, reservation("a", "ip1", t0.Add(time.Second)))) }, counts{"GetItem": 1, "TransactWriteItems": 1}},
		{"reserve USER", func() error {
			r := reservation("alice", "ip1", t0)
			r.Require = verification.RequireUser
			return errOf(s.Reserve(ctx, r))
		}, counts{"TransactWriteItems": 1}},
		{"reserve USER, no such user (spends the ip budget)", func() error {
			r := reservation("bob", "ip1", t0)
			r.Require = verification.RequireUser
			return errOf(s.Reserve(ctx, r))
		}, counts{"TransactWriteItems": 1, "UpdateItem": 1}},
		{"release", func() error { return s.Release(ctx, ok) }, counts{"UpdateItem": 1}},
		{"reserve for verifies", func() error { return errOf(s.Reserve(ctx, verified)) }, counts{"GetItem": 1, "TransactWriteItems": 1}},
		{"consume wrong code", func() error {
			_, err := s.Consume(ctx, attempt(verified, "wrong", t0.Add(m)))
			return err
		}, counts{"GetItem": 1, "TransactWriteItems": 1}},
		{"consume right code", func() error {
			_, err := s.Consume(ctx, attempt(verified, verified.CodeHash, t0.Add(m)))
			return err
		}, counts{"GetItem": 1, "TransactWriteItems": 1}},
		{"consume used code", func() error {
			_, err := s.Consume(ctx, attempt(verified, "wrong", t0.Add(m)))
			return err
		}, counts{"GetItem": 1}},
		{"user exists", func() error { _, err := s.Exists(ctx, "alice"); return err }, counts{"GetItem": 1}},
		{"put challenge", func() error {
			return s.PutChallenge(ctx, captcha.Challenge{ID: "c", AnswerHash: "ans", ExpiresAt: t0.Add(m), IP: "ip1", Now: t0})
		}, counts{"TransactWriteItems": 1}},
		{"solve challenge wrong", func() error {
			return s.SolveChallenge(ctx, captcha.Solve{ID: "c", AnswerHash: "bad", Now: t0, MaxAttempts: 3})
		}, counts{"UpdateItem": 1}},
		{"solve challenge right", func() error {
			return s.SolveChallenge(ctx, captcha.Solve{ID: "c", AnswerHash: "ans", Now: t0, MaxAttempts: 3})
		}, counts{"UpdateItem": 2}},
	} {
		calls.Reset()
		err := tc.do()
		if o := storetest.Outcome(err); strings.HasPrefix(o, "error") || strings.HasPrefix(o, "unavailable") {
			t.Fatalf("%s: %s", tc.name, o)
		}
		got := calls.Counts()
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: got calls %v, want %v (outcome %s)", tc.name, got, tc.want, storetest.Outcome(err))
		} else {
			t.Logf("%s: %v (outcome %s)", tc.name, got, storetest.Outcome(err))
		}
	}
}

// TestExpiredButPresent: DynamoDB's TTL deletes expired items lazily (up to
// days in AWS), so the store must judge expiry itself. The items here are
// still in the table (their ttl lies in 2099), yet at the injected time they
// are dead.
func TestExpiredButPresent(t *testing.T) {
	endpoint := testenv.Get(t, testenv.DynamoDB)
	s, client, tables := newStore(t, endpoint, storetest.Limits(), nil)
	ctx := t.Context()
	t0 := storetest.T0
	r := reservation("a", "ip1", t0)
	if _, err := s.Reserve(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := s.PutChallenge(ctx, captcha.Challenge{ID: "c", AnswerHash: "ans", ExpiresAt: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	late := r.ExpiresAt.Add(time.Millisecond)
	if _, err := s.Consume(ctx, attempt(r, r.CodeHash, late)); !errors.Is(err, verification.ErrExpired) {
		t.Errorf("consume after expiry: got %v, want %v", err, verification.ErrExpired)
	}
	if err := s.SolveChallenge(ctx, captcha.Solve{ID: "c", AnswerHash: "ans", Now: late, MaxAttempts: 3}); !errors.Is(err, captcha.ErrExpired) {
		t.Errorf("solve after expiry: got %v, want %v", err, captcha.ErrExpired)
	}
	for _, pk := range []string{"tgt#" + r.Handle, "cap#c"} {
		out, err := client.GetItem(ctx, &dynamodb.GetItemInput{
			TableName:      aws.String(tables["VerificationTable"]),
			Key:            map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}},
			ConsistentRead: aws.Bool(true),
		})
		if err != nil || out.Item == nil {
			t.Errorf("item %s: got %v, %v, want it still present", pk, out.Item, err)
		}
	}
	// The code is still alive before its expiry: the refusals above were
	// about time, not a missing item, and counted no attempt.
	if _, err := s.Consume(ctx, attempt(r, r.CodeHash, r.ExpiresAt.Add(-time.Millisecond))); err != nil {
		t.Errorf("consume before expiry: got %v, want nil", err)
	}
}

// TestItemLayout reads back the items a send writes, so that the layout the
// package documents (and operators query) cannot drift.
func TestItemLayout(t *testing.T) {
	endpoint := testenv.Get(t, testenv.DynamoDB)
	l := storetest.Limits()
	l.TargetCap, l.IPCap, l.VerifyIPCap, l.CaptchaIPCap = 3, 2, 3, 2
	s, client, tables := newStore(t, endpoint, l, nil)
	ctx := t.Context()
	t0 := storetest.T0
	r := reservation("a", "ip1", t0)
	r.CaptchaID = "k1"
	if _, err := s.Reserve(ctx, r); err != nil {
		t.Fatal(err)
	}
	get := func(pk string) map[string]string {
		out, err := client.GetItem(ctx, &dynamodb.GetItemInput{
			TableName:      aws.String(tables["VerificationTable"]),
			Key:            map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}},
			ConsistentRead: aws.Bool(true),
		})
		if err != nil {
			t.Fatalf("get %s: %v", pk, err)
		}
		flat := map[string]string{}
		for k, v := range out.Item {
			switch v := v.(type) {
			case *types.AttributeValueMemberS:
				flat[k] = v.Value
			case *types.AttributeValueMemberN:
				flat[k] = "N" + v.Value
			default:
				flat[k] = fmt.Sprintf("%T", v)
			}
		}
		return flat
	}
	ms := func(t time.Time) string { return fmt.Sprintf("N%d", t.UnixMilli()) }
	sec := func(t time.Time) string { return fmt.Sprintf("N%d", t.Unix()) }
	for _, tc := range []struct {
		pk   string
		want map[string]string
	}{
		{"tgt#" + r.Handle, map[string]string{
			"pk": "tgt#" + r.Handle, "d0": "N0", "d1": "N0", "d2": ms(t0),
			"nonce": r.Nonce, "code_hash": r.CodeHash, "attempts": "N0", "expires_at": ms(r.ExpiresAt),
			"identity": "a", "channel": "email", "target": "ANY", "ttl": sec(t0.Add(24 * time.Hour)),
		}},
		{"ip#ip1", map[string]string{"pk": "ip#ip1", "h0": "N0", "h1": ms(t0), "ttl": sec(t0.Add(time.Hour))}},
		{"ctok#k1", map[string]string{"pk": "ctok#k1", "uses": "N1", "ttl": sec(r.CaptchaExp.Add(5 * time.Minute))}},
	} {
		if got := get(tc.pk); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("item %s:\n got %v\nwant %v", tc.pk, got, tc.want)
		}
	}
	if _, err := s.Consume(ctx, attempt(r, r.CodeHash, t0)); err != nil {
		t.Fatal(err)
	}
	if tgt := get("tgt#" + r.Handle); tgt["used_at"] != ms(t0) || tgt["attempts"] != "N1" {
		t.Errorf("used_at and attempts: got %s and %s, want %s and N1", tgt["used_at"], tgt["attempts"], ms(t0))
	}
	if err := s.PutChallenge(ctx, captcha.Challenge{ID: "c", AnswerHash: "ans", ExpiresAt: t0.Add(time.Minute), IP: "ip1", Now: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.SolveChallenge(ctx, captcha.Solve{ID: "c", AnswerHash: "ans", Now: t0, MaxAttempts: 3}); err != nil {
		t.Fatal(err)
	}
	var vip, cip []string // the verify and captcha budgets: VerifyIPCap and CaptchaIPCap slots
	for i := range l.VerifyIPCap {
		vip = append(vip, fmt.Sprintf("h%d", i))
	}
	for i := range l.CaptchaIPCap {
		cip = append(cip, fmt.Sprintf("h%d", i))
	}
	for _, tc := range []struct {
		pk   string
		want map[string]string
	}{
		{"vip#ip1", slotsItem("vip#ip1", vip, ms(t0), sec(t0.Add(time.Hour)))},
		{"cip#ip1", slotsItem("cip#ip1", cip, ms(t0), sec(t0.Add(time.Hour)))},
		{"cap#c", map[string]string{
			"pk": "cap#c", "answer_hash": "ans", "attempts": "N1", "expires_at": ms(t0.Add(time.Minute)),
			"used_at": ms(t0), "ttl": sec(t0.Add(time.Minute)),
		}},
	} {
		if got := get(tc.pk); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("item %s:\n got %v\nwant %v", tc.pk, got, tc.want)
		}
	}
}

// slotsItem is the item of a rolling budget after one event at newest:
// every slot but the last zero.
func slotsItem(pk string, slots []string, newest, ttl string) map[string]string {
	m := map[string]string{"pk": pk, "ttl": ttl}
	for _, s := range slots {
		m[s] = "N0"
	}
	m[slots[len(slots)-1]] = newest
	return m
}

// recorder keeps the last TransactionCanceledException the store saw.
type recorder struct {
	dynamo.Client
	last *types.TransactionCanceledException
}

func (r *recorder) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	out, err := r.Client.TransactWriteItems(ctx, in, opts...)
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) {
		r.last = tce
	}
	return out, err
}

// TestEveryFailedConditionIsReported checks what the refusal logic relies
// on: a cancelled transaction names every item whose condition failed, each
// with its old image, not just the first. Here all four fail at once.
func TestEveryFailedConditionIsReported(t *testing.T) {
	endpoint := testenv.Get(t, testenv.DynamoDB)
	l := storetest.Limits()
	l.IPCap = 1
	client, tables := dynamotest.StartTables(t, endpoint)
	rec := &recorder{Client: client}
	s, err := dynamo.New(rec, dynamo.Options{Table: tables["VerificationTable"], UsersTable: tables["UsersTable"], Limits: l})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	first := reservation("a", "ip1", storetest.T0)
	first.CaptchaID = "k1"
	if _, err := s.Reserve(ctx, first); err != nil {
		t.Fatal(err)
	}
	// The same IP (budget of one spent), the same target (cooldown), the
	// same captcha token (used) and a user that does not exist.
	again := reservation("a", "ip1", storetest.T0.Add(time.Second))
	again.CaptchaID = "k1"
	again.Require = verification.RequireUser
	_, err = s.Reserve(ctx, again)
	if got, want := storetest.Outcome(err), "rate_limit_exceeded/3599"; got != want {
		t.Errorf("refusal: got %s, want %s", got, want)
	}
	if rec.last == nil {
		t.Fatal("no TransactionCanceledException seen")
	}
	wantItem := []bool{true, true, true, false} // the missing user has no old image
	if len(rec.last.CancellationReasons) != len(wantItem) {
		t.Fatalf("reasons: got %d, want %d", len(rec.last.CancellationReasons), len(wantItem))
	}
	for i, r := range rec.last.CancellationReasons {
		t.Logf("reason %d: code %s, item %v", i, aws.ToString(r.Code), r.Item != nil)
		if got := aws.ToString(r.Code); got != "ConditionalCheckFailed" {
			t.Errorf("reason %d: got code %s, want ConditionalCheckFailed", i, got)
		}
		if got := r.Item != nil; got != wantItem[i] {
			t.Errorf("reason %d: got item %v, want %v", i, got, wantItem[i])
		}
	}
}

// TestLargestCaps: caps of 100 slots keep every expression within
// DynamoDB's limits.
func TestLargestCaps(t *testing.T) {
	endpoint := testenv.Get(t, testenv.DynamoDB)
	l := storetest.Limits()
	l.TargetCap, l.IPCap, l.CaptchaIPGate, l.CaptchaTgtGate = 100, 100, 3, 3
	s, _, _ := newStore(t, endpoint, l, nil)
	r := reservation("a", "ip1", storetest.T0)
	r.Require = verification.RequireNoUser
	if _, err := s.Reserve(t.Context(), r); err != nil {
		t.Fatalf("reserve: %v", err)
	}
	if err := s.Release(t.Context(), r); err != nil {
		t.Fatalf("release: %v", err)
	}
}

func TestNewChecksLimits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		tgt, ip  int
		table    string
		wantFail bool
	}{
		{"defaults", 10, 10, "t", false},
		{"one slot each", 1, 1, "t", false},
		{"largest", 100, 100, "t", false},
		{"no target cap", 0, 10, "t", true},
		{"no ip cap", 10, 0, "t", true},
		{"target cap too large", 101, 10, "t", true},
		{"no table", 10, 10, "", true},
	} {
		l := storetest.Limits()
		l.TargetCap, l.IPCap = tc.tgt, tc.ip
		_, err := dynamo.New(nil, dynamo.Options{Table: tc.table, UsersTable: "users", Limits: l})
		if got := err != nil; got != tc.wantFail {
			t.Errorf("%s: got error %v, want failure %v", tc.name, err, tc.wantFail)
		}
	}
}

// TestUnavailable: when DynamoDB cannot be reached, throttles or fails on its
// side, every operation fails closed with ErrUnavailable; a request DynamoDB
// rejects as malformed is an internal error instead.
func TestUnavailable(t *testing.T) {
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr
	}()
	answer := func(status int, body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.WriteHeader(status)
			fmt.Fprint(w, body)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	hang := func() string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Read the body first: only then does the server notice that
			// the client hung up and end the request's context.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}()
	apiError := func(code string) string {
		return fmt.Sprintf(`{"__type":"com.amazonaws.dynamodb.v20120810#%s","message":"test"}`, code)
	}
	canceled := func(reasons ...string) string {
		var rs []string
		for _, r := range reasons {
			rs = append(rs, fmt.Sprintf(`{"Code":%q}`, r))
		}
		return fmt.Sprintf(`{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"cancelled","CancellationReasons":[%s]}`, strings.Join(rs, ","))
	}

	for _, tc := range []struct {
		name     string
		endpoint string
		timeout  time.Duration
		wantKind verification.Kind
	}{
		{"connection refused", closed, 5 * time.Second, verification.KindServiceUnavailable},
		{"deadline", hang, 200 * time.Millisecond, verification.KindServiceUnavailable},
		{"throttling", answer(400, apiError("ThrottlingException")), 5 * time.Second, verification.KindServiceUnavailable},
		{"provisioned throughput", answer(400, apiError("ProvisionedThroughputExceededException")), 5 * time.Second, verification.KindServiceUnavailable},
		{"request limit", answer(400, apiError("RequestLimitExceeded")), 5 * time.Second, verification.KindServiceUnavailable},
		{"internal server error", answer(500, apiError("InternalServerError")), 5 * time.Second, verification.KindServiceUnavailable},
		{"bad gateway", answer(502, `<html>bad gateway</html>`), 5 * time.Second, verification.KindServiceUnavailable},
		{"validation", answer(400, apiError("ValidationException")), 5 * time.Second, verification.KindInternal},
		{"not found", answer(400, apiError("ResourceNotFoundException")), 5 * time.Second, verification.KindInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := dynamotest.NewClient(tc.endpoint, func(o *dynamodb.Options) { o.Retryer = aws.NopRetryer{} })
			s, err := dynamo.New(client, dynamo.Options{Table: "codes", UsersTable: "users", Limits: storetest.Limits()})
			if err != nil {
				t.Fatal(err)
			}
			r := reservation("a", "ip1", storetest.T0)
			key := verification.IdempotentSend{
				ID: "k1", Fingerprint: "fp", Owner: r.Nonce, Now: storetest.T0,
				LeaseUntil: storetest.T0.Add(verification.IdempotencyLease),
				KeepUntil:  storetest.T0.Add(verification.IdempotencyKeep),
			}
			answer := verification.Answer{Status: 200, Body: []byte("{}")}
			ops := map[string]func(ctx context.Context) error{
				"Reserve": func(ctx context.Context) error { return errOf(s.Reserve(ctx, r)) },
				"Release": func(ctx context.Context) error { return s.Release(ctx, r) },
				"Consume": func(ctx context.Context) error {
					_, err := s.Consume(ctx, attempt(r, "x", storetest.T0))
					return err
				},
				"Exists": func(ctx context.Context) error { _, err := s.Exists(ctx, "a"); return err },
				"PutChallenge": func(ctx context.Context) error {
					return s.PutChallenge(ctx, captcha.Challenge{ID: "c", ExpiresAt: storetest.T0})
				},
				"SolveChallenge": func(ctx context.Context) error {
					return s.SolveChallenge(ctx, captcha.Solve{ID: "c", Now: storetest.T0, MaxAttempts: 3})
				},
				// The answer of a send that holds its key (an UpdateItem), and
				// of a refused one (a PutItem).
				"RememberAnswer claimed": func(ctx context.Context) error {
					return s.RememberAnswer(ctx, verification.IdempotencyRecord{IdempotentSend: key, Claimed: true, Answer: answer})
				},
				"RememberAnswer refused": func(ctx context.Context) error {
					return s.RememberAnswer(ctx, verification.IdempotencyRecord{IdempotentSend: key, Answer: answer})
				},
				"ReleaseKey": func(ctx context.Context) error { return s.ReleaseKey(ctx, key) },
			}
			for name, op := range ops {
				ctx, cancel := context.WithTimeout(t.Context(), tc.timeout)
				start := time.Now()
				err := op(ctx)
				cancel()
				if got := verification.KindOf(err); got != tc.wantKind {
					t.Errorf("%s: got %s (%v), want %s", name, got, err, tc.wantKind)
				}
				if d := time.Since(start); d > tc.timeout+time.Second {
					t.Errorf("%s: took %v", name, d)
				}
			}
		})
	}

	// Cancelled transactions whose reasons are not failed conditions.
	for _, tc := range []struct {
		name     string
		body     string
		wantKind verification.Kind
		wantTx   int // TransactWriteItems calls
	}{
		{"conflict, retried then given up", canceled("None", "TransactionConflict"), verification.KindServiceUnavailable, 4},
		{"throttled item", canceled("ThrottlingError", "None"), verification.KindServiceUnavailable, 1},
		{"validation", canceled("ValidationError", "None"), verification.KindInternal, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls dynamotest.CallCounter
			client := dynamotest.NewClient(answer(400, tc.body), calls.Option(), func(o *dynamodb.Options) { o.Retryer = aws.NopRetryer{} })
			s, err := dynamo.New(client, dynamo.Options{Table: "codes", UsersTable: "users", Limits: storetest.Limits()})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Reserve(t.Context(), reservation("a", "ip1", storetest.T0))
			if got := verification.KindOf(err); got != tc.wantKind {
				t.Errorf("got %s (%v), want %s", got, err, tc.wantKind)
			}
			if got := calls.Counts()["TransactWriteItems"]; got != tc.wantTx {
				t.Errorf("transactions: got %d, want %d", got, tc.wantTx)
			}
		})
	}
}

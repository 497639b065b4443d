package dynamo

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/verifykit/verifykit/internal/captcha"
	"github.com/verifykit/verifykit/internal/verification"
)

func TestPrepare(t *testing.T) {
	set := func(v expression.OperandBuilder) expression.Builder {
		return expression.NewBuilder().WithUpdate(expression.Set(expression.Name("a"), v))
	}
	for _, tc := range []struct {
		name    string
		b       expression.Builder
		params  []param
		wantErr string
	}{
		{"parameters and a constant", set(arg(pNow)).WithCondition(expression.Name("b").Equal(arg(pNonce)).And(expression.Name("c").LessThan(expression.Value(1)))), []param{pNow, pNonce}, ""},
		{"a string that is no stand-in", set(expression.Value("x")), nil, "placeholder :0 carries"},
		{"a stand-in not declared", set(arg(pNonce)), []param{pNow}, "placeholder :0 carries"},
		{"a malformed stand-in", set(expression.Value(sentinel + "x")), nil, "placeholder :0 carries"},
		{"a declared parameter without placeholder", set(arg(pNow)), []param{pNow, pNonce}, "parameter nonce has no placeholder"},
		{"an unbuildable expression", expression.NewBuilder(), nil, "build expression"},
	} {
		_, err := prepare("test", tc.b, tc.params...)
		if got := fmt.Sprint(err); tc.wantErr == "" && err != nil || tc.wantErr != "" && !strings.Contains(got, tc.wantErr) {
			t.Errorf("%s: got error %v, want %q", tc.name, err, tc.wantErr)
		}
	}

	p, err := prepare("test", set(arg(pNow)).WithCondition(expression.Name("b").Equal(arg(pNonce)).And(expression.Name("c").LessThan(expression.Value(1)))), pNow, pNonce)
	if err != nil {
		t.Fatal(err)
	}
	values, err := p.bind(&args{pNow: num(7), pNonce: str("n"), pCodeHash: str("unused")})
	if err != nil {
		t.Fatal(err)
	}
	got := render(p.condition, p.names, values) + "; " + render(p.update, p.names, values)
	if want := `(b = "n") AND (c < 1); SET a = 7`; got != want {
		t.Errorf("bound: got %s, want %s", got, want)
	}
	if _, err := p.bind(&args{pNow: num(7)}); err == nil || !strings.Contains(err.Error(), "no value for parameter nonce") {
		t.Errorf("bind without nonce: got error %v", err)
	}
}

// smallLimits have small caps and both captcha gates, so the expressions of
// a send hold every kind of clause and stay short enough to read.
var smallLimits = verification.Limits{
	Cooldown: time.Minute, TargetCap: 3, TargetWindow: 24 * time.Hour,
	IPCap: 2, IPWindow: time.Hour, CaptchaIPGate: 1, CaptchaTgtGate: 2, MaxAttempts: 5, CodeTTL: 10 * time.Minute,
	VerifyIPCap: 3, CaptchaIPCap: 2, CaptchaTokenUses: 2,
}

// captureDB keeps every input and answers UpdateItem with the next of
// updateErrs (nil when they run out).
type captureDB struct {
	mu         sync.Mutex // an ANY send's GetItem runs beside its transaction
	inputs     []any
	txErr      error
	updateErrs []error
	item       map[string]types.AttributeValue // what GetItem answers
}

// txs are the TransactWriteItems inputs received, in order.
func (c *captureDB) txs() (out []*dynamodb.TransactWriteItemsInput) {
	for _, in := range c.inputs {
		if tx, ok := in.(*dynamodb.TransactWriteItemsInput); ok {
			out = append(out, tx)
		}
	}
	return out
}

// updates are the UpdateItem inputs received, in order.
func (c *captureDB) updates() (out []*dynamodb.UpdateItemInput) {
	for _, in := range c.inputs {
		if u, ok := in.(*dynamodb.UpdateItemInput); ok {
			out = append(out, u)
		}
	}
	return out
}

func (c *captureDB) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inputs = append(c.inputs, in)
	return &dynamodb.TransactWriteItemsOutput{}, c.txErr
}

func (c *captureDB) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inputs = append(c.inputs, in)
	var err error
	if len(c.updateErrs) > 0 {
		err, c.updateErrs = c.updateErrs[0], c.updateErrs[1:]
	}
	return &dynamodb.UpdateItemOutput{Attributes: map[string]types.AttributeValue{attrAttempts: num(1), attrAnswerHash: str("right")}}, err
}

func (c *captureDB) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inputs = append(c.inputs, in)
	return &dynamodb.PutItemOutput{}, nil
}

func (c *captureDB) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inputs = append(c.inputs, in)
	return &dynamodb.GetItemOutput{Item: c.item}, nil
}

// TestBoundRequests runs every kind of request, each expression shape
// included, and checks what the prepared expressions send: every value
// placeholder of the strings has its value and no value goes unused (which
// DynamoDB refuses), no stand-in reaches a request, and the shared names and
// strings are not changed by requests.
func TestBoundRequests(t *testing.T) {
	now := time.UnixMilli(100_000_000)
	l := smallLimits
	db := &captureDB{}
	s, err := New(db, "codes", "users", l)
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
	noUser.Require = verification.RequireNoUser
	db.item = map[string]types.AttributeValue{
		attrNonce: str("n"), attrCodeHash: str("c"), attrAttempts: num(0), attrExpiresAt: num(now.Add(time.Minute).UnixMilli()),
	}
	ctx := t.Context()
	_, _ = s.Reserve(ctx, r) // ANY: with its user lookup
	_, _ = s.Reserve(ctx, withToken)
	_, _ = s.Reserve(ctx, noUser)
	_ = s.Release(ctx, r)
	// A wrong and a right code: each a read and a transaction.
	_, _ = s.Consume(ctx, verification.Attempt{Handle: "h", Nonce: "n", CodeHash: "x", IP: "ip1", Now: now, MaxAttempts: 5})
	_, _ = s.Consume(ctx, verification.Attempt{Handle: "h", Nonce: "n", CodeHash: "c", IP: "ip1", Now: now, MaxAttempts: 5})
	_ = s.PutChallenge(ctx, captcha.Challenge{ID: "c", AnswerHash: "right", ExpiresAt: now.Add(time.Minute), IP: "ip1", Now: now})
	// A wrong answer (its count), a right one (its count and the solve).
	_ = s.SolveChallenge(ctx, captcha.Solve{ID: "c", AnswerHash: "wrong", Now: now, MaxAttempts: 3})
	_ = s.SolveChallenge(ctx, captcha.Solve{ID: "c", AnswerHash: "right", Now: now, MaxAttempts: 3})
	_, _ = s.Exists(ctx, "a")
	// A user refusal spends the IP budget with the IP's update alone.
	db.txErr = &types.TransactionCanceledException{CancellationReasons: []types.CancellationReason{
		reason("None", nil), reason("None", nil), reason("None", nil), reason("ConditionalCheckFailed", nil),
	}}
	if _, err := s.Reserve(ctx, withToken); verification.KindOf(err) != verification.KindUserNotFound {
		t.Errorf("user refusal: got %v", err)
	}

	type expr struct {
		strs   []*string
		names  map[string]string
		values map[string]types.AttributeValue
	}
	var exprs []expr
	kinds := map[string]int{}
	for _, in := range db.inputs {
		kinds[fmt.Sprintf("%T", in)]++
		switch in := in.(type) {
		case *dynamodb.TransactWriteItemsInput:
			for _, it := range in.TransactItems {
				switch {
				case it.Update != nil:
					exprs = append(exprs, expr{[]*string{it.Update.UpdateExpression, it.Update.ConditionExpression}, it.Update.ExpressionAttributeNames, it.Update.ExpressionAttributeValues})
				case it.Put != nil:
					exprs = append(exprs, expr{[]*string{it.Put.ConditionExpression}, it.Put.ExpressionAttributeNames, it.Put.ExpressionAttributeValues})
				case it.ConditionCheck != nil:
					exprs = append(exprs, expr{[]*string{it.ConditionCheck.ConditionExpression}, it.ConditionCheck.ExpressionAttributeNames, it.ConditionCheck.ExpressionAttributeValues})
				}
			}
		case *dynamodb.UpdateItemInput:
			exprs = append(exprs, expr{[]*string{in.UpdateExpression, in.ConditionExpression}, in.ExpressionAttributeNames, in.ExpressionAttributeValues})
		case *dynamodb.PutItemInput:
			exprs = append(exprs, expr{[]*string{in.ConditionExpression}, in.ExpressionAttributeNames, in.ExpressionAttributeValues})
		case *dynamodb.GetItemInput:
			exprs = append(exprs, expr{[]*string{in.ProjectionExpression}, in.ExpressionAttributeNames, nil})
		}
	}
	// 4 sends, 2 verifies and a captcha image are transactions; release,
	// the three of the captcha answers and the IP spend are updates; the
	// reads of the two verifies and Exists are gets.
	if got, want := fmt.Sprint(kinds), "map[*dynamodb.GetItemInput:4 *dynamodb.TransactWriteItemsInput:7 *dynamodb.UpdateItemInput:5]"; got != want {
		t.Fatalf("requests: got %s, want %s", got, want)
	}
	valueRef := regexp.MustCompile(`:[0-9A-Za-z_]+`)
	nameRef := regexp.MustCompile(`#[0-9A-Za-z_]+`)
	for i, e := range exprs {
		var text string
		for _, s := range e.strs {
			text += aws.ToString(s) + "\n"
		}
		used := map[string]bool{}
		for _, ref := range valueRef.FindAllString(text, -1) {
			used[ref] = true
			if e.values[ref] == nil {
				t.Errorf("expression %d: %s has no value in %q", i, ref, text)
			}
		}
		for ph, v := range e.values {
			if !used[ph] {
				t.Errorf("expression %d: value %s unused in %q", i, ph, text)
			}
			if s, ok := v.(*types.AttributeValueMemberS); ok && strings.HasPrefix(s.Value, sentinel) {
				t.Errorf("expression %d: %s is a stand-in, %q", i, ph, s.Value)
			}
		}
		for _, ref := range nameRef.FindAllString(text, -1) {
			if e.names[ref] == "" {
				t.Errorf("expression %d: %s has no name in %q", i, ref, text)
			}
		}
		if len(e.names) != len(slices.Compact(slices.Sorted(slices.Values(nameRef.FindAllString(text, -1))))) {
			t.Errorf("expression %d: names %v for %q", i, e.names, text)
		}
	}

	// The shared parts are as New made them.
	fresh, err := New(&captureDB{}, "codes", "users", l)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]*prepared{{&s.ip, &fresh.ip}, {&s.tgtGated, &fresh.tgtGated}, {&s.countRight, &fresh.countRight}, {&s.exists, &fresh.exists}} {
		if !maps.Equal(p[0].names, p[1].names) || aws.ToString(p[0].update) != aws.ToString(p[1].update) ||
			aws.ToString(p[0].condition) != aws.ToString(p[1].condition) {
			t.Errorf("%s: changed by requests", p[0].op)
		}
	}
}

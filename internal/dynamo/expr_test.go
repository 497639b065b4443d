package dynamo

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/verifykit/verifykit/internal/verification"
)

var placeholder = regexp.MustCompile(`[#:][0-9A-Za-z_]+`)

// render puts the names and values back into expr, so that a test reads
// the expression as DynamoDB evaluates it: numbers as they are, strings
// quoted.
func render(expr *string, names map[string]string, values map[string]types.AttributeValue) string {
	if expr == nil {
		return ""
	}
	return strings.TrimSpace(placeholder.ReplaceAllStringFunc(*expr, func(p string) string {
		if p[0] == '#' {
			return names[p]
		}
		switch v := values[p].(type) {
		case *types.AttributeValueMemberN:
			return v.Value
		case *types.AttributeValueMemberS:
			return fmt.Sprintf("%q", v.Value)
		}
		return fmt.Sprintf("%T", values[p])
	}))
}

func TestExpressions(t *testing.T) {
	for _, tc := range []struct {
		name, got, want string
	}{
		{"shift of 1", shift("d", 1), "#d0 = :now"},
		{"shift of 3", shift("d", 3), "#d0 = if_not_exists(#d1, :zero), #d1 = if_not_exists(#d2, :zero), #d2 = :now"},
		{"unshift of 1", unshift("d", 1), "#d0 = :zero"},
		{"unshift of 3", unshift("h", 3), "#h2 = if_not_exists(#h1, :zero), #h1 = if_not_exists(#h0, :zero), #h0 = :zero"},
		{"older than", olderThan("h", 4, ":cut"), "(attribute_not_exists (#h4)) OR (#h4 <= :cut)"},
		{"and", and("a", "b", "c"), "(a) AND (b) AND (c)"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}

	// The names come from the text, the constants only where the text
	// uses them: DynamoDB refuses a value no expression uses.
	e := newExpr("SET "+shift("h", 1)+", #ttl = :ttl\n", olderThan("h", 0, ":ip_cut"), "", map[string]types.AttributeValue{":uses": num(3)})
	if got, want := fmt.Sprint(e.names, e.consts), "map[#h0:h0 #ttl:ttl] map[]"; got != want {
		t.Errorf("window of 1: got %s, want %s", got, want)
	}
	e = newExpr("ADD #uses :one\n", "#uses < :uses", "", map[string]types.AttributeValue{":uses": num(3)})
	if got := render(e.update, e.names, e.consts) + render(e.condition, e.names, e.consts); got != "ADD uses 1uses < 3" {
		t.Errorf("constants: got %q", got)
	}
}

// TestReserveExpressions pins the expressions of a send and of a release,
// as DynamoDB reads them.
func TestReserveExpressions(t *testing.T) {
	now := time.UnixMilli(100_000_000)
	db := &captureDB{}
	s, err := New(db, Options{Table: "codes", UsersTable: "users", Limits: smallLimits})
	if err != nil {
		t.Fatal(err)
	}
	r := verification.Reservation{
		Handle: "h", IP: "ip1", Nonce: "n", CodeHash: "c", Identity: "a", Channel: verification.Email,
		Target: verification.TargetAny, Require: verification.RequireNoUser, Now: now, ExpiresAt: now.Add(10 * time.Minute),
	}
	if _, err := s.Reserve(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	ipCut, coolCut, dayCut := now.UnixMilli()-3_600_000, now.UnixMilli()-60_000, now.UnixMilli()-86_400_000
	items := db.txs()[0].TransactItems
	ip, tgt, user, release := items[0].Update, items[1].Update, items[2].ConditionCheck, db.updates()[0]
	for _, tc := range []struct {
		name, got, want string
	}{
		{"ip update", render(ip.UpdateExpression, ip.ExpressionAttributeNames, ip.ExpressionAttributeValues),
			fmt.Sprintf("SET h0 = if_not_exists(h1, 0), h1 = %d, ttl = %d", now.UnixMilli(), now.Add(time.Hour).Unix())},
		{"ip condition: budget and gate", render(ip.ConditionExpression, ip.ExpressionAttributeNames, ip.ExpressionAttributeValues),
			fmt.Sprintf("((attribute_not_exists (h0)) OR (h0 <= %d)) AND ((attribute_not_exists (h1)) OR (h1 <= %d))", ipCut, ipCut)},
		{"target update", render(tgt.UpdateExpression, tgt.ExpressionAttributeNames, tgt.ExpressionAttributeValues),
			fmt.Sprintf(`REMOVE used_at
SET d0 = if_not_exists(d1, 0), d1 = if_not_exists(d2, 0), d2 = %d, nonce = "n", code_hash = "c", attempts = 0, expires_at = %d, identity = "a", channel = "email", target = "ANY", ttl = %d`,
				now.UnixMilli(), r.ExpiresAt.UnixMilli(), now.Add(24*time.Hour).Unix())},
		{"target condition: cooldown, cap and gate", render(tgt.ConditionExpression, tgt.ExpressionAttributeNames, tgt.ExpressionAttributeValues),
			fmt.Sprintf("(((attribute_not_exists (d2)) OR (d2 <= %d)) AND ((attribute_not_exists (d0)) OR (d0 <= %d))) AND ((attribute_not_exists (d1)) OR (d1 <= %d))", coolCut, dayCut, dayCut)},
		{"user check", render(user.ConditionExpression, user.ExpressionAttributeNames, user.ExpressionAttributeValues), "attribute_not_exists (identity)"},
		{"release update", render(release.UpdateExpression, release.ExpressionAttributeNames, release.ExpressionAttributeValues),
			"REMOVE nonce, code_hash, attempts, expires_at, used_at, identity, channel, target\nSET d2 = if_not_exists(d1, 0), d1 = if_not_exists(d0, 0), d0 = 0"},
		{"release condition", render(release.ConditionExpression, release.ExpressionAttributeNames, release.ExpressionAttributeValues), `nonce = "n"`},
	} {
		if tc.got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, tc.got, tc.want)
		}
	}
}

// TestLargestExpressions: with caps of maxSlots every expression stays within
// DynamoDB's limits: 4 KB per expression string, 300 operators and functions
// per expression. The slots' placeholders (#d12) grow with the slots.
func TestLargestExpressions(t *testing.T) {
	now := time.UnixMilli(4_000_000_000_000) // long numbers everywhere
	l := verification.Limits{
		Cooldown: time.Minute, TargetCap: maxSlots, TargetWindow: 24 * time.Hour,
		IPCap: maxSlots, IPWindow: time.Hour, CaptchaIPGate: 3, CaptchaTgtGate: 3, MaxAttempts: 5, CodeTTL: 10 * time.Minute,
		VerifyIPCap: maxSlots, CaptchaIPCap: maxSlots, CaptchaTokenUses: maxSlots,
	}
	db := &captureDB{}
	s, err := New(db, Options{Table: "codes", UsersTable: "users", Limits: l})
	if err != nil {
		t.Fatal(err)
	}
	r := verification.Reservation{Handle: "h", IP: "ip1", Nonce: "n", Identity: "a", Require: verification.RequireUser, Now: now, ExpiresAt: now.Add(time.Minute)}
	if _, err := s.Reserve(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	exprs := map[string]*string{}
	for i, it := range db.txs()[0].TransactItems {
		if u := it.Update; u != nil {
			exprs[fmt.Sprintf("item %d update", i)] = u.UpdateExpression
			exprs[fmt.Sprintf("item %d condition", i)] = u.ConditionExpression
		}
	}
	exprs["release update"] = db.updates()[0].UpdateExpression
	exprs["release condition"] = db.updates()[0].ConditionExpression
	operators := regexp.MustCompile(`<=|>=|<>|=|<|>|\b(AND|OR|NOT|attribute_exists|attribute_not_exists|if_not_exists)\b`)
	for name, e := range exprs {
		n, ops := len(aws.ToString(e)), len(operators.FindAllString(aws.ToString(e), -1))
		t.Logf("%s: %d bytes, %d operators", name, n, ops)
		if n > 4096 {
			t.Errorf("%s: %d bytes, want at most 4096", name, n)
		}
		if ops > 300 {
			t.Errorf("%s: %d operators and functions, want at most 300", name, ops)
		}
	}
}

// TestItemStructs: the structs the store decodes items into name exactly
// the attributes the expressions write.
// TestItemStructs: the structs items are read into have exactly the
// attributes the expressions that read them name: a code's are those a
// verify reads (readCode), a challenge's those its solve counts and checks
// (countSolve) and the answer's hash.
func TestItemStructs(t *testing.T) {
	s, err := New(&captureDB{}, Options{Table: "codes", UsersTable: "users", Limits: smallLimits})
	if err != nil {
		t.Fatal(err)
	}
	used := int64(1)
	for _, tc := range []struct {
		item any
		want []string
	}{
		{codeItem{UsedAt: &used}, slices.Collect(maps.Values(s.readCode.names))},
		{challengeItem{UsedAt: &used}, append(slices.Collect(maps.Values(s.countSolve.names)), attrAnswerHash)},
	} {
		m, err := attributevalue.MarshalMap(tc.item)
		if err != nil {
			t.Fatal(err)
		}
		got := slices.Sorted(maps.Keys(m))
		slices.Sort(tc.want)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%T: got attributes %v, want %v", tc.item, got, tc.want)
		}
	}
}

func TestTTLOf(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want int64
	}{
		{time.Unix(100, 0), 100},
		{time.Unix(100, 1), 101}, // never before t
		{time.UnixMilli(100999), 101},
	} {
		if got := ttlOf(tc.t); got != tc.want {
			t.Errorf("ttlOf(%v): got %d, want %d", tc.t.UnixNano(), got, tc.want)
		}
	}
}

func TestSlotsOf(t *testing.T) {
	item := map[string]types.AttributeValue{"d0": num(5), "d2": num(7), "d3": num(9)}
	for _, tc := range []struct {
		item map[string]types.AttributeValue
		n    int
		want verification.Slots
	}{
		{nil, 3, verification.Slots{0, 0, 0}},
		{item, 3, verification.Slots{5, 0, 7}}, // only what the conditions look at
		{item, 4, verification.Slots{5, 0, 7, 9}},
	} {
		if got := slotsOf(tc.item, "d", tc.n); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("slotsOf(%v, %d): got %v, want %v", tc.item, tc.n, got, tc.want)
		}
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
	c.inputs = append(c.inputs, in)
	return &dynamodb.TransactWriteItemsOutput{}, c.txErr
}

func (c *captureDB) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.inputs = append(c.inputs, in)
	var err error
	if len(c.updateErrs) > 0 {
		err, c.updateErrs = c.updateErrs[0], c.updateErrs[1:]
	}
	return &dynamodb.UpdateItemOutput{Attributes: map[string]types.AttributeValue{attrAttempts: num(1), attrAnswerHash: str("right")}}, err
}

func (c *captureDB) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.inputs = append(c.inputs, in)
	return &dynamodb.PutItemOutput{}, nil
}

func (c *captureDB) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.inputs = append(c.inputs, in)
	return &dynamodb.GetItemOutput{Item: c.item}, nil
}

package dynamo

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/verifykit/verifykit/internal/verification"
)

var placeholder = regexp.MustCompile(`[#:][0-9]+`)

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
	update := func(u expression.UpdateBuilder) string {
		e, err := expression.NewBuilder().WithUpdate(u).Build()
		if err != nil {
			t.Fatal(err)
		}
		return render(e.Update(), e.Names(), e.Values())
	}
	condition := func(c expression.ConditionBuilder) string {
		e, err := expression.NewBuilder().WithCondition(c).Build()
		if err != nil {
			t.Fatal(err)
		}
		return render(e.Condition(), e.Names(), e.Values())
	}
	for _, tc := range []struct {
		name, got, want string
	}{
		{"shift of 1", update(newWindow("d", 1).shift(expression.UpdateBuilder{}, expression.Value(7))), "SET d0 = 7"},
		{"shift of 3", update(newWindow("d", 3).shift(expression.UpdateBuilder{}, expression.Value(7))), "SET d0 = if_not_exists(d1, 0), d1 = if_not_exists(d2, 0), d2 = 7"},
		{"unshift of 1", update(newWindow("d", 1).unshift(expression.UpdateBuilder{})), "SET d0 = 0"},
		{"unshift of 3", update(newWindow("h", 3).unshift(expression.UpdateBuilder{})), "SET h2 = if_not_exists(h1, 0), h1 = if_not_exists(h0, 0), h0 = 0"},
		{"older than", condition(newWindow("h", 5).olderThan(4, expression.Value(9))), "(attribute_not_exists (h4)) OR (h4 <= 9)"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

// TestReserveExpressions pins the expressions of a send and of a release,
// as DynamoDB reads them.
func TestReserveExpressions(t *testing.T) {
	now := time.UnixMilli(100_000_000)
	db := &captureDB{}
	s, err := New(db, "codes", "users", smallLimits)
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
// per expression. The builder's placeholders are numbered (#12, :57), so
// their length grows with the slots.
func TestLargestExpressions(t *testing.T) {
	now := time.UnixMilli(4_000_000_000_000) // long numbers everywhere
	l := verification.Limits{
		Cooldown: time.Minute, TargetCap: maxSlots, TargetWindow: 24 * time.Hour,
		IPCap: maxSlots, IPWindow: time.Hour, CaptchaIPGate: 3, CaptchaTgtGate: 3, MaxAttempts: 5, CodeTTL: 10 * time.Minute,
		VerifyIPCap: maxSlots, CaptchaIPCap: maxSlots, CaptchaTokenUses: maxSlots,
	}
	db := &captureDB{}
	s, err := New(db, "codes", "users", l)
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
func TestItemStructs(t *testing.T) {
	used := int64(1)
	for _, tc := range []struct {
		item any
		want []string
	}{
		{codeItem{UsedAt: &used}, []string{attrNonce, attrCodeHash, attrAttempts, attrExpiresAt, attrUsedAt, attrIdentity, attrChannel, attrTarget}},
		{challengeItem{UsedAt: &used}, []string{attrAnswerHash, attrAttempts, attrExpiresAt, attrUsedAt}},
	} {
		m, err := attributevalue.MarshalMap(tc.item)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for k := range m {
			got = append(got, k)
		}
		slices.Sort(got)
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

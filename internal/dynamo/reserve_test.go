package dynamo

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/verifykit/verifykit/internal/verification"
)

// fakeDB answers with canned errors and records the calls: for the refusal
// paths DynamoDB Local cannot be made to take on demand (a race between the
// transaction and the IP update, a clock edge).
type fakeDB struct {
	txErr     error
	updateErr error
	getErr    error
	calls     []string
	// lookups counts GetItem apart from calls: an ANY send's user lookup
	// runs beside its transaction, in no fixed order with it.
	lookups atomic.Int32
}

func (f *fakeDB) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	f.calls = append(f.calls, fmt.Sprintf("TransactWriteItems(%d)", len(in.TransactItems)))
	return &dynamodb.TransactWriteItemsOutput{}, f.txErr
}

func (f *fakeDB) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	f.calls = append(f.calls, "UpdateItem("+in.Key[attrPK].(*types.AttributeValueMemberS).Value+")")
	return &dynamodb.UpdateItemOutput{}, f.updateErr
}

func (f *fakeDB) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	f.calls = append(f.calls, "PutItem")
	return &dynamodb.PutItemOutput{}, nil
}

func (f *fakeDB) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	f.lookups.Add(1)
	return &dynamodb.GetItemOutput{}, f.getErr
}

func reason(code string, item map[string]types.AttributeValue) types.CancellationReason {
	return types.CancellationReason{Code: aws.String(code), Item: item}
}

func slotItem(prefix string, times ...time.Time) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{}
	for i, t := range times {
		item[prefix+strconv.Itoa(i)] = num(t.UnixMilli())
	}
	return item
}

// TestAcceptedSendWithAFailedLookup: an ANY send whose transaction committed
// but whose user lookup failed answers ErrUserLookup, so the service gives
// the reservation back; a refused send's refusal wins over the lookup's
// failure.
func TestAcceptedSendWithAFailedLookup(t *testing.T) {
	now := time.Date(2099, 1, 1, 12, 0, 0, 0, time.UTC)
	r := verification.Reservation{Handle: "h", IP: "ip1", Nonce: "n", Identity: "a", Now: now, ExpiresAt: now.Add(time.Minute)}
	for _, tc := range []struct {
		name  string
		txErr error
		want  func(error) bool
	}{
		{"committed", nil, func(err error) bool { return errors.Is(err, verification.ErrUserLookup) }},
		{"refused", &types.TransactionCanceledException{CancellationReasons: []types.CancellationReason{reason("None", nil), reason("ConditionalCheckFailed", slotItem("h", now.Add(-time.Second), now.Add(-time.Second)))}},
			func(err error) bool { return verification.KindOf(err) == verification.KindRateLimitExceeded }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := &fakeDB{txErr: tc.txErr, getErr: errors.New("throttled")}
			s, err := New(db, Options{Table: "codes", UsersTable: "users", Limits: smallLimits})
			if err != nil {
				t.Fatal(err)
			}
			if isUser, err := s.Reserve(t.Context(), r); !tc.want(err) || isUser {
				t.Errorf("got %v (is_user %v)", err, isUser)
			}
		})
	}
}

func TestRefusalEdges(t *testing.T) {
	now := time.Date(2099, 1, 1, 12, 0, 0, 0, time.UTC)
	l := verification.Limits{
		Cooldown: time.Minute, TargetCap: 2, TargetWindow: 24 * time.Hour,
		IPCap: 2, IPWindow: time.Hour, MaxAttempts: 5, CodeTTL: 10 * time.Minute,
		VerifyIPCap: 3, CaptchaIPCap: 2, CaptchaTokenUses: 2,
	}
	old := now.Add(-2 * time.Hour)
	for _, tc := range []struct {
		name      string
		require   verification.Requirement
		reasons   []types.CancellationReason
		updateErr error
		want      string
		wantCalls string
	}{
		{
			name:      "user refusal spends the ip budget",
			require:   verification.RequireUser,
			reasons:   []types.CancellationReason{reason("None", nil), reason("None", nil), reason("ConditionalCheckFailed", nil)},
			want:      "user_not_found",
			wantCalls: "[TransactWriteItems(3) UpdateItem(ip#ip1)]",
		},
		{
			name:    "the budget was spent between the transaction and the ip update",
			require: verification.RequireNoUser,
			reasons: []types.CancellationReason{reason("None", nil), reason("None", nil), reason("ConditionalCheckFailed", nil)},
			updateErr: &types.ConditionalCheckFailedException{
				Item: slotItem("h", now.Add(-10*time.Minute), now.Add(-time.Second)),
			},
			want:      "rate_limit_exceeded/3000",
			wantCalls: "[TransactWriteItems(3) UpdateItem(ip#ip1)]",
		},
		{
			name:    "a failed condition whose item breaks no rule (clock edge)",
			reasons: []types.CancellationReason{reason("ConditionalCheckFailed", slotItem("h", old, old)), reason("None", nil)},
			want:    "rate_limit_exceeded/1",
			// never an accepted send, never a second call
			wantCalls: "[TransactWriteItems(2)]",
		},
		{
			name:      "cancelled without any failed condition",
			reasons:   []types.CancellationReason{reason("None", nil), reason("None", nil)},
			want:      "internal_error",
			wantCalls: "[TransactWriteItems(2)]",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := &fakeDB{
				txErr:     &types.TransactionCanceledException{CancellationReasons: tc.reasons},
				updateErr: tc.updateErr,
			}
			s, err := New(db, Options{Table: "codes", UsersTable: "users", Limits: l})
			if err != nil {
				t.Fatal(err)
			}
			r := verification.Reservation{Handle: "h", IP: "ip1", Nonce: "n", Identity: "a", Require: tc.require, Now: now, ExpiresAt: now.Add(time.Minute)}
			_, err = s.Reserve(t.Context(), r)
			got := string(verification.KindOf(err))
			if e, ok := err.(*verification.Error); ok && e.RetryAfter > 0 {
				got = fmt.Sprintf("%s/%d", got, e.RetryAfter)
			}
			if got != tc.want {
				t.Errorf("got %s (%v), want %s", got, err, tc.want)
			}
			if calls := fmt.Sprint(db.calls); calls != tc.wantCalls {
				t.Errorf("calls: got %s, want %s", calls, tc.wantCalls)
			}
			// An ANY send's lookup has returned by the time Reserve does,
			// refused or not.
			wantLookups := int32(0)
			if tc.require == verification.RequireNothing {
				wantLookups = 1
			}
			if db.lookups.Load() != wantLookups {
				t.Errorf("user lookups: got %d, want %d", db.lookups.Load(), wantLookups)
			}
		})
	}
}

// TestBudgetRefusal: the refusal of a verify's or a captcha's per-IP budget
// waits until the oldest of the last n events leaves the window, and one
// second when the failed condition's item breaks no rule (a clock edge).
func TestBudgetRefusal(t *testing.T) {
	now := time.Date(2099, 1, 1, 12, 0, 0, 0, time.UTC)
	s, err := New(&fakeDB{}, Options{Table: "codes", UsersTable: "users", Limits: verification.Limits{
		Cooldown: time.Minute, TargetCap: 2, TargetWindow: 24 * time.Hour, IPCap: 2, IPWindow: time.Hour,
		MaxAttempts: 5, CodeTTL: 10 * time.Minute, VerifyIPCap: 2, CaptchaIPCap: 2, CaptchaTokenUses: 2,
	}})
	if err != nil {
		t.Fatal(err)
	}
	old := now.Add(-2 * time.Hour)
	for _, tc := range []struct {
		name string
		item map[string]types.AttributeValue
		want int
	}{
		{"spent: the oldest leaves in 50 min", slotItem("h", now.Add(-10*time.Minute), now.Add(-time.Minute)), 3000},
		{"nothing in the window (clock edge)", slotItem("h", old, old), 1},
		{"no item (clock edge)", nil, 1},
	} {
		err := s.budgetRefusal(reason("ConditionalCheckFailed", tc.item), 2, now)
		if e, ok := err.(*verification.Error); !ok || e.Kind != verification.KindRateLimitExceeded || e.RetryAfter != tc.want {
			t.Errorf("%s: %v, want rate_limit_exceeded/%d", tc.name, err, tc.want)
		}
	}
}

package dynamo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/verifykit/verifykit/internal/verification"
)

// storeError wraps err from the DynamoDB client. Throttling, server-side
// failures, network errors and deadlines wrap verification.ErrUnavailable, so
// the service fails closed with service_unavailable; anything else (a
// validation error is a bug) is only wrapped and becomes internal_error.
func storeError(op string, err error) error {
	if unavailable(err) {
		return fmt.Errorf("dynamo: %s: %w: %w", op, verification.ErrUnavailable, err)
	}
	return fmt.Errorf("dynamo: %s: %w", op, err)
}

// unavailableCodes are the API error codes that say "not now" rather than
// "never": capacity, throttling, a server fault, or a write that kept losing
// to concurrent transactions on the same item.
var unavailableCodes = map[string]bool{
	"ProvisionedThroughputExceededException": true,
	"RequestLimitExceeded":                   true,
	"ThrottlingException":                    true,
	"Throttling":                             true,
	"InternalServerError":                    true,
	"ServiceUnavailable":                     true,
	"TransactionConflictException":           true,
	"TransactionInProgressException":         true,
}

func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) && unavailableCodes[api.ErrorCode()] {
		return true
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) && status.HTTPStatusCode() >= 500 {
		return true
	}
	// The SDK marks errors of sending a request or reading its answer
	// (connection refused, reset, DNS) with ConnectionError.
	var conn interface{ ConnectionError() bool }
	if errors.As(err, &conn) && conn.ConnectionError() {
		return true
	}
	var quota ratelimit.QuotaExceededError // the SDK's client-side retry budget ran out
	if errors.As(err, &quota) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}

// conflictRetries bounds how often a write that lost a race with a concurrent
// transaction on the same item is tried again before the store gives up as
// unavailable. A conflict means the other write is committing right now, so
// a short pause is enough for the retry to see its result.
const conflictRetries = 3

// conflicted reports whether err says a concurrent transaction touched one of
// the items: a TransactionConflict reason of a cancelled transaction, or a
// single-item write rejected with TransactionConflictException.
func conflicted(err error) bool {
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) {
		for _, r := range tce.CancellationReasons {
			if code(r) == "TransactionConflict" {
				return true
			}
		}
		return false
	}
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "TransactionConflictException"
}

// retryConflicts calls op until it does not fail with a conflict, at most
// 1+conflictRetries times, pausing a few random milliseconds in between so
// that the racing writers spread out. It returns op's last error.
func retryConflicts(ctx context.Context, op func() error) error {
	for attempt := 0; ; attempt++ {
		err := op()
		if err == nil || attempt == conflictRetries || !conflicted(err) {
			return err
		}
		pause := time.Millisecond + rand.N(4*time.Millisecond<<attempt)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// Cancellation reason codes of TransactWriteItems.
const (
	reasonNone        = "None"
	reasonCondition   = "ConditionalCheckFailed"
	reasonConflict    = "TransactionConflict"
	reasonThrottling  = "ThrottlingError"
	reasonProvisioned = "ProvisionedThroughputExceeded"
)

func code(r types.CancellationReason) string {
	if r.Code == nil {
		return ""
	}
	return *r.Code
}

// failed reports whether the item of reason r failed its condition.
func failed(r types.CancellationReason) bool { return code(r) == reasonCondition }

// canceledError maps a cancelled transaction whose reasons are not only
// failed conditions: throttling or a conflict that outlived the retries is
// unavailable, anything else (a validation error) is a bug. It returns nil
// when every reason is None or ConditionalCheckFailed and at least one
// condition failed, i.e. when the reasons name a refusal.
func canceledError(op string, tce *types.TransactionCanceledException) error {
	anyFailed, busy := false, false
	for _, r := range tce.CancellationReasons {
		switch code(r) {
		case reasonNone:
		case reasonCondition:
			anyFailed = true
		case reasonConflict, reasonThrottling, reasonProvisioned:
			busy = true
		default:
			return fmt.Errorf("dynamo: %s: %w", op, tce)
		}
	}
	switch {
	case busy:
		return fmt.Errorf("dynamo: %s: %w: %w", op, verification.ErrUnavailable, tce)
	case !anyFailed:
		return fmt.Errorf("dynamo: %s: cancelled without a reason: %w", op, tce)
	}
	return nil
}

// update runs one conditional UpdateItem on the item key of the verification
// table, with the expression e and its values (e.values), retrying transaction
// conflicts. A failed condition always returns the old item (ALL_OLD): the
// caller names the refusal from it without a read.
func (s *Store) update(ctx context.Context, key map[string]types.AttributeValue, e *expr, values map[string]types.AttributeValue, ret types.ReturnValue) (out *dynamodb.UpdateItemOutput, err error) {
	err = retryConflicts(ctx, func() error {
		out, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                           s.table,
			Key:                                 key,
			UpdateExpression:                    e.update,
			ConditionExpression:                 e.condition,
			ExpressionAttributeNames:            e.names,
			ExpressionAttributeValues:           values,
			ReturnValues:                        ret,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		return err
	})
	return out, err
}

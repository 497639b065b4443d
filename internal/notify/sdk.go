package notify

import (
	"context"
	"errors"
	"net"
	"net/http/httptrace"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go/middleware"

	"github.com/verifykit/verifykit/internal/verification"
)

// DefaultAttemptTimeout bounds one attempt of a provider call when the
// sender's options name no timeout. With at most one retry and a short
// backoff, a send stays under about 6.5 s, inside the function's budget.
const DefaultAttemptTimeout = 3 * time.Second

const (
	// maxAttempts is one try and one retry: a second retry would
	// not fit the Lambda budget, and each retry of a send risks a duplicate.
	maxAttempts = 2
	// maxBackoff caps the SDK's jittered wait before the retry (its default
	// cap is 20 s).
	maxBackoff = 500 * time.Millisecond
)

// outcomeUnknownError marks an attempt whose request was written in full and
// whose answer did not come back in time: the provider may have accepted it.
type outcomeUnknownError struct{ err error }

func (e *outcomeUnknownError) Error() string {
	return "no answer in time after the request was sent (outcome unknown): " + e.err.Error()
}

func (e *outcomeUnknownError) Unwrap() []error { return []error{verification.ErrOutcomeUnknown, e.err} }

// RetryableError tells the SDK's retryer (which checks this method before
// anything else) not to send again: a retry could deliver a second message,
// and a definite error from it would hide that the first may have arrived.
func (e *outcomeUnknownError) RetryableError() bool { return false }

// sdkCall returns what both SDK senders set on every call: a retryer wrapper
// allowing at most one retry with a short backoff, whatever the client was
// built with, and a middleware giving each attempt its timeout and
// classifying its failure. Setting them per call keeps the guarantee with the
// sender rather than with whoever builds the client.
func sdkCall(timeout time.Duration) (func(aws.Retryer) aws.Retryer, func(*middleware.Stack) error) {
	limit := func(r aws.Retryer) aws.Retryer {
		if r == nil {
			r = retry.NewStandard()
		}
		n := r.MaxAttempts()
		if n <= 0 || n > maxAttempts { // 0 would mean no limit at all
			n = maxAttempts
		}
		return retry.AddWithMaxBackoffDelay(retry.AddWithMaxAttempts(r, n), maxBackoff)
	}
	add := func(s *middleware.Stack) error {
		// After "Retry" in the finalize step means once per attempt.
		return s.Finalize.Insert(attemptMiddleware{timeout: timeout}, "Retry", middleware.After)
	}
	return limit, add
}

// attemptMiddleware runs one attempt of an SDK call under its own timeout and
// watches, with an httptrace hook, whether the request was written in full.
// That is where a send's outcome turns unknown: before it (connection refused, DNS
// failure, a timeout while connecting) nothing reached the provider and the
// send has failed; after it, a timeout leaves the outcome unknown. An error
// answer from the provider is a failure either way.
type attemptMiddleware struct{ timeout time.Duration }

func (attemptMiddleware) ID() string { return "notify.Attempt" }

func (a attemptMiddleware) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				wrote.Store(true)
			}
		},
	})
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel() // the deserializers inside next have read the body by now
	out, md, err := next.HandleFinalize(ctx, in)
	if err != nil && wrote.Load() && (ctx.Err() != nil || isTimeout(err)) {
		err = &outcomeUnknownError{err: err}
	}
	return out, md, err
}

// isTimeout reports a timeout that is not this attempt's context (an HTTP
// client's own Timeout, a read deadline).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

package notify

import (
	"errors"
	"fmt"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/wneessen/go-mail"

	"github.com/verifykit/verifykit/internal/logging"
)

// providerError is a provider's failure as a log line may show it: the
// operation, then the provider's error code and status, never its message
// text, which can quote the recipient (SES names unverified addresses, SNS
// repeats an invalid number, go-mail appends "affected recipient(s)" and
// SMTP servers quote the address they refuse). errors.Is and errors.As still
// see the whole chain.
type providerError struct {
	op  string
	err error
}

// failed wraps a provider's error for the caller.
func failed(op string, err error) error { return &providerError{op: op, err: err} }

func (e *providerError) Error() string { return "notify: " + e.op + ": " + describe(e.err) }

func (e *providerError) Unwrap() error { return e.err }

// describe names a failure by kind and code. What has neither (a network
// error, a timeout) is told in its own words, with any address or number in
// them masked.
func describe(err error) string {
	var unknown *outcomeUnknownError
	if errors.As(err, &unknown) {
		return "no answer in time after the request was sent (outcome unknown): " + describe(unknown.err)
	}
	var se *mail.SendError
	if errors.As(err, &se) {
		s := se.Reason.String()
		if code := se.ErrorCode(); code != 0 {
			s += fmt.Sprintf(", reply %d", code)
			if esc := se.EnhancedStatusCode(); esc != "" {
				s += " " + esc
			}
		}
		if se.IsTemp() {
			s += " (temporary)"
		}
		return s
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		s := api.ErrorCode()
		var resp *smithyhttp.ResponseError
		if errors.As(err, &resp) {
			s += fmt.Sprintf(" (HTTP %d)", resp.HTTPStatusCode())
		}
		return s
	}
	return logging.Redact(err.Error())
}

package httpapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/verifykit/verifykit/internal/verification"
)

// statuses is THE table from error kind to HTTP status (the README error table). Nothing
// else in the service chooses an error status.
var statuses = map[verification.Kind]int{
	verification.KindInvalidRequest:          http.StatusBadRequest,
	verification.KindInvalidPhoneNumber:      http.StatusBadRequest,
	verification.KindInvalidEmail:            http.StatusBadRequest,
	verification.KindInvalidTarget:           http.StatusBadRequest,
	verification.KindInvalidVerificationCode: http.StatusBadRequest,
	verification.KindInvalidCaptcha:          http.StatusBadRequest,
	verification.KindCaptchaExpired:          http.StatusBadRequest,
	verification.KindVerificationExpired:     http.StatusBadRequest,
	verification.KindCaptchaUsed:             http.StatusBadRequest,
	verification.KindCaptchaInvalid:          http.StatusForbidden,
	verification.KindUserNotFound:            http.StatusNotFound,
	verification.KindUserAlreadyExists:       http.StatusConflict,
	verification.KindChannelDisabled:         http.StatusForbidden,
	verification.KindPayloadTooLarge:         http.StatusRequestEntityTooLarge,
	verification.KindCaptchaRequired:         http.StatusPreconditionRequired,
	verification.KindRateLimitExceeded:       http.StatusTooManyRequests,
	verification.KindTooManyAttempts:         http.StatusTooManyRequests,
	verification.KindOriginNotAllowed:        http.StatusForbidden,
	verification.KindDestinationBlocked:      http.StatusForbidden,
	verification.KindNotFound:                http.StatusNotFound,
	verification.KindMethodNotAllowed:        http.StatusMethodNotAllowed,
	verification.KindSendFailed:              http.StatusBadGateway,
	verification.KindServiceUnavailable:      http.StatusServiceUnavailable,
	verification.KindInternal:                http.StatusInternalServerError,

	verification.KindIdempotencyKeyReused:     http.StatusUnprocessableEntity,
	verification.KindIdempotencyKeyInProgress: http.StatusConflict,
}

// Descriptions of the kinds that have no *verification.Error to carry one.
var fallbackDescriptions = map[verification.Kind]string{
	verification.KindServiceUnavailable: "Service temporarily unavailable, please try again later",
	verification.KindInternal:           "Internal error, please try again later",
}

type errorBody struct {
	Error             string `json:"error"`
	ErrorCode         int    `json:"error_code"`
	ErrorDescription  string `json:"error_description"`
	RetryAfter        int    `json:"retry_after,omitempty"`
	AttemptsRemaining *int   `json:"attempts_remaining,omitempty"`
}

// errorResponse is THE writer of errors: every refusal of every route and
// adapter is rendered here. Causes of unknown errors stay in the logs.
func errorResponse(err error) Response {
	kind := verification.KindOf(err)
	body := errorBody{Error: string(kind), ErrorCode: kind.Code(), ErrorDescription: fallbackDescriptions[kind]}
	var e *verification.Error
	if errors.As(err, &e) && e.Kind == kind && kind != verification.KindInternal {
		body.ErrorDescription = e.Description
		body.RetryAfter = e.RetryAfter
		body.AttemptsRemaining = e.AttemptsRemaining
	}
	resp := jsonResponse(statuses[kind], body)
	if body.RetryAfter > 0 {
		resp.Header["Retry-After"] = strconv.Itoa(body.RetryAfter)
	}
	return resp
}

// StatusOf is the HTTP status of an error kind and whether the table has it.
// Tests that check documents promising a status (events/README.md) read it
// here rather than keeping a copy of the table.
func StatusOf(kind verification.Kind) (int, bool) {
	s, ok := statuses[kind]
	return s, ok
}

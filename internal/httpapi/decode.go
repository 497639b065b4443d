package httpapi

import (
	"bytes"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/verifykit/verifykit/internal/verification"
)

// Request bodies. Fields are pointers so that absent and null (which counts
// as absent) are nil. Other members are ignored (clients of this API family
// send locale, usage, client_id), unless they are case variants of a field.
type sendBody struct {
	Target      *string `json:"target"`
	PhoneNumber *string `json:"phone_number"`
	Email       *string `json:"email"`
	Locale      *string `json:"locale"`
}

type verifyBody struct {
	VerificationID   *string `json:"verification_id"`
	VerificationCode *string `json:"verification_code"`
}

type captchaBody struct {
	Token *string `json:"token"`
	Key   *string `json:"key"`
}

type emptyBody struct{}

var (
	sendFields    = []string{"target", "phone_number", "email", "locale"}
	verifyFields  = []string{"verification_id", "verification_code"}
	captchaFields = []string{"token", "key"}
)

var errBadJSON = verification.Errorf(verification.KindInvalidRequest, "Request body must be one JSON object with string fields")

// decode reads body into v strictly, so that no two JSON parsers can read one
// request differently: one object, nothing after it, valid UTF-8, no
// duplicate member names, exact (case-sensitive) names, and known fields of
// the right type. encoding/json (v1) would accept all of these; the JSON v2
// semantics (go-json-experiment, the mirror of Go's encoding/json/v2) refuse
// them by default. A member that differs from a known field only in case is
// refused too, since a case-insensitive parser would take it for that field.
func decode(body []byte, v any, known []string) error {
	if err := jsonv2.Unmarshal(body, v); err != nil {
		return errBadJSON
	}
	if name, ok := caseVariant(body, known); ok {
		return verification.Errorf(verification.KindInvalidRequest, "Unknown field %q: field names are case-sensitive", name)
	}
	return nil
}

// caseVariant finds a top-level member whose name equals a known field's
// name but for case. body is already known to be one valid object.
func caseVariant(body []byte, known []string) (string, bool) {
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	if _, err := dec.ReadToken(); err != nil { // {
		return "", false
	}
	for dec.PeekKind() == '"' {
		tok, err := dec.ReadToken()
		if err != nil {
			return "", false
		}
		name := tok.String()
		for _, k := range known {
			if name != k && strings.EqualFold(name, k) {
				return name, true
			}
		}
		if err := dec.SkipValue(); err != nil {
			return "", false
		}
	}
	return "", false
}

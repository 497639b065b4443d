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
// send locale, usage, client_id), unless they are case variants of a field:
// the decoder keeps them in Unknown (nothing is kept, or allocated, when there
// are none) so that decode can look at their names.
type sendBody struct {
	Target      *string        `json:"target"`
	PhoneNumber *string        `json:"phone_number"`
	Email       *string        `json:"email"`
	Locale      *string        `json:"locale"`
	Unknown     jsontext.Value `json:",embed"`
}

type verifyBody struct {
	VerificationID   *string        `json:"verification_id"`
	VerificationCode *string        `json:"verification_code"`
	Unknown          jsontext.Value `json:",embed"`
}

type captchaBody struct {
	Token   *string        `json:"token"`
	Key     *string        `json:"key"`
	Unknown jsontext.Value `json:",embed"`
}

type emptyBody struct {
	Unknown jsontext.Value `json:",embed"`
}

// requestBody is a decoded request body: unknown returns its members that
// are no known field.
type requestBody interface{ unknown() jsontext.Value }

func (b *sendBody) unknown() jsontext.Value    { return b.Unknown }
func (b *verifyBody) unknown() jsontext.Value  { return b.Unknown }
func (b *captchaBody) unknown() jsontext.Value { return b.Unknown }
func (b *emptyBody) unknown() jsontext.Value   { return b.Unknown }

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
func decode(data []byte, v requestBody, known []string) error {
	if err := jsonv2.Unmarshal(data, v); err != nil {
		return errBadJSON
	}
	// Exact names went to their fields; any other member is in unknown(),
	// also (still checked) for duplicates and invalid UTF-8.
	if extra := v.unknown(); len(extra) > 0 {
		if name, ok := caseVariant(extra, known); ok {
			return verification.Errorf(verification.KindInvalidRequest, "Unknown field %q: field names are case-sensitive", name)
		}
	}
	return nil
}

// caseVariant finds a top-level member whose name equals a known field's
// name but for case. obj is already known to be one valid object.
func caseVariant(obj []byte, known []string) (string, bool) {
	dec := jsontext.NewDecoder(bytes.NewReader(obj))
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

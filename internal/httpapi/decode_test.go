package httpapi

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/verifykit/verifykit/internal/verification"
)

func TestEveryKindHasAStatus(t *testing.T) {
	for _, k := range verification.Kinds() {
		s, ok := statuses[k]
		if !ok {
			t.Errorf("kind %s has no HTTP status", k)
			continue
		}
		if s < 400 || s > 599 {
			t.Errorf("kind %s: status %d", k, s)
		}
	}
	if len(statuses) != len(verification.Kinds()) {
		t.Errorf("%d statuses for %d kinds", len(statuses), len(verification.Kinds()))
	}
}

// FuzzDecodeSend checks that the strict decoder never panics and never
// accepts what the standard library would read differently: whatever it
// accepts is valid UTF-8 JSON whose known fields encoding/json reads to the
// same values.
func FuzzDecodeSend(f *testing.F) {
	// The seed corpus is in testdata/fuzz/FuzzDecodeSend; these add the
	// request shapes of the API.
	for _, s := range []string{
		`{"target":"ANY","email":"a@b.c"}`,
		`{"target":"ANY","phone_number":"+86 13800138000","locale":"en"}`,
		`{"target":"ANY","target":"USER"}`,
		`{"Target":"ANY"}`,
		`{"target":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var b sendBody
		if err := decode(body, &b, sendFields); err != nil {
			if verification.KindOf(err) != verification.KindInvalidRequest {
				t.Fatalf("error kind %s", verification.KindOf(err))
			}
			return
		}
		if !utf8.Valid(body) {
			t.Fatalf("accepted invalid UTF-8: %q", body)
		}
		var std map[string]json.RawMessage
		if err := json.Unmarshal(body, &std); err != nil {
			t.Fatalf("accepted what encoding/json refuses: %q: %v", body, err)
		}
		check := func(name string, got *string) {
			raw, ok := std[name]
			var want *string
			if ok {
				_ = json.Unmarshal(raw, &want)
			}
			if (got == nil) != (want == nil) || got != nil && *got != *want {
				t.Fatalf("%s: strict %v, encoding/json %v for %q", name, got, want, body)
			}
		}
		check("target", b.Target)
		check("phone_number", b.PhoneNumber)
		check("email", b.Email)
		check("locale", b.Locale)
	})
}

// TestResponseEncoders holds the hand-written answers of the hot routes to
// json.Marshal's bytes for the values they carry (base64url ids, JWTs) and,
// for any other string, to the same decoded value (json.Marshal also escapes
// <, >, & and U+2028 for HTML; both are valid JSON of the same string).
func TestResponseEncoders(t *testing.T) {
	for _, s := range []string{
		"", "AAECAwQFBgcICQoLDA0OD6zreFv0uL19prjWx94PLD9KgfUDqu5kTKvNcYtMqEEA",
		"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-_", `quote " backslash \ ctl ` + "\x01\n\u2028 <é>&",
	} {
		sameBytes := !strings.ContainsAny(s, "\"\\<>&\u2028")
		for _, n := range []int{0, 600, -1} {
			for _, isUser := range []bool{true, false} {
				sr := sendResponse{VerificationID: s, ExpiresIn: n, IsUser: isUser}
				vr := verifyResponse{VerificationToken: s, ExpiresIn: n}
				for _, c := range []struct {
					got  []byte
					v    any
					back any
				}{
					{sr.appendJSON(nil), sr, &sendResponse{}},
					{vr.appendJSON(nil), vr, &verifyResponse{}},
				} {
					want, _ := json.Marshal(c.v)
					if sameBytes && string(c.got) != string(want) {
						t.Errorf("%T: got %s, json.Marshal %s", c.v, c.got, want)
					}
					if err := json.Unmarshal(c.got, c.back); err != nil {
						t.Fatalf("%T: %s is not JSON: %v", c.v, c.got, err)
					}
					if again, _ := json.Marshal(c.back); string(again) != string(want) {
						t.Errorf("%T: %s reads back as %s, want %s", c.v, c.got, again, want)
					}
				}
			}
		}
	}
}

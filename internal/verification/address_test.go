package verification

import (
	"errors"
	"net/mail"
	"strconv"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

func TestPhoneParse(t *testing.T) {
	cn, err := NewPhoneParser([]string{"CN"})
	if err != nil {
		t.Fatal(err)
	}
	cnhk, err := NewPhoneParser([]string{"CN", "HK"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		parser *PhoneParser
		in     string
		want   string // E.164, "" for invalid_phone_number
	}{
		{"with space", cn, "+86 13800138000", "+8613800138000"},
		{"without space", cn, "+8613800138000", "+8613800138000"},
		{"other mobile prefix", cn, "+86 15588665555", "+8615588665555"},
		{"no plus", cn, "86 13800138000", ""},
		{"national only", cn, "13800138000", ""},
		{"10 digits", cn, "+86 1380013800", ""},
		{"12 digits", cn, "+86 138001380000", ""},
		{"landline Beijing", cn, "+86 1012345678", ""},
		{"other country", cn, "+1 2025550123", ""},
		{"HK not allowed", cn, "+852 51234567", ""},
		{"HK allowed", cnhk, "+852 51234567", "+85251234567"},
		{"HK allowed no space", cnhk, "+85251234567", "+85251234567"},
		{"two spaces", cn, "+86  13800138000", ""},
		{"inner space", cn, "+86 138 0013 8000", ""},
		{"space inside country code", cn, "+8 613800138000", ""},
		{"dashes", cn, "+86-138-0013-8000", ""},
		{"parentheses", cn, "+86 (138)00138000", ""},
		{"tab", cn, "+86\t13800138000", ""},
		{"leading space", cn, " +86 13800138000", ""},
		{"trailing space", cn, "+86 13800138000 ", ""},
		{"trailing newline", cn, "+86 13800138000\n", ""},
		{"full-width digits", cn, "+86 １３８００１３８０００", ""},
		{"arabic-indic digits", cn, "+86 ١٣٨٠٠١٣٨٠٠٠", ""},
		{"letters", cn, "+86 1380013800O", ""},
		{"empty", cn, "", ""},
		{"plus only", cn, "+", ""},
		{"leading zero trunk", cn, "+86 013800138000", ""},
		{"very long", cn, "+86 " + strings.Repeat("1", 40), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := tt.parser.Parse(tt.in)
			if tt.want == "" {
				if KindOf(err) != KindInvalidPhoneNumber {
					t.Fatalf("Parse(%q) = %+v, %v; want invalid_phone_number", tt.in, a, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if a.Identity != tt.want || a.To != tt.want || a.Channel != SMS {
				t.Fatalf("Parse(%q) = %+v, want identity %s", tt.in, a, tt.want)
			}
		})
	}
}

func TestNewPhoneParserUnknownRegion(t *testing.T) {
	if _, err := NewPhoneParser([]string{"CN", "XX"}); err == nil {
		t.Fatal("got nil error for region XX")
	}
}

func TestParseEmail(t *testing.T) {
	tests := []struct {
		in, want string // want "" for invalid_email
	}{
		{"user@example", "user@example"},
		{"User.Name+tag@Example.COM", "user.name+tag@example.com"},
		{"a@b.c", "a@b.c"},
		{"o'brien@example.com", "o'brien@example.com"},
		{strings.Repeat("a", 64) + "@example.com", strings.Repeat("a", 64) + "@example.com"},
		{strings.Repeat("a", 65) + "@example.com", ""},
		{"a@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("e", 61), ""}, // 255 chars
		{"", ""},
		{"user", ""},
		{"@example.com", ""},
		{"user@", ""},
		{"a@b@c", ""},
		{"John <john@example.com>", ""},
		{"john@example.com (John)", ""},
		{"\"john doe\"@example.com", ""},
		{"john doe@example.com", ""},
		{" john@example.com", ""},
		{"john@example.com ", ""},
		{"john@example.com\n", ""},
		{"jo\x00hn@example.com", ""},
		{"jöhn@example.com", ""},
		{".john@example.com", ""},
		{"john.@example.com", ""},
		{"jo..hn@example.com", ""},
		{"john@-example.com", ""},
		{"john@example-.com", ""},
		{"john@example..com", ""},
		{"john@[127.0.0.1]", ""},
		{"john@exa_mple.com", ""},
		{"john,jane@example.com", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			a, err := ParseEmail(tt.in)
			if tt.want == "" {
				if KindOf(err) != KindInvalidEmail {
					t.Fatalf("ParseEmail(%q) = %+v, %v; want invalid_email", tt.in, a, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEmail(%q): %v", tt.in, err)
			}
			if a.Identity != tt.want || a.To != tt.in {
				t.Fatalf("ParseEmail(%q) = %+v, want identity %q to %q", tt.in, a, tt.want, tt.in)
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	for _, s := range []string{"ANY", "USER", "NOT_USER"} {
		if got, err := ParseTarget(s); err != nil || string(got) != s {
			t.Errorf("ParseTarget(%q) = %q, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "any", "User", "NOT-USER", "CUR_USER", " ANY"} {
		if _, err := ParseTarget(s); !errors.Is(err, err) || KindOf(err) != KindInvalidTarget {
			t.Errorf("ParseTarget(%q) = %v, want invalid_target", s, err)
		}
	}
}

// referenceParseEmail is ParseEmail as it was with net/mail deciding the
// dot-atom grammar of the local part: the oracle of FuzzParseEmail.
func referenceParseEmail(s string) bool {
	if len(s) < 3 || len(s) > 254 || strings.Count(s, "@") != 1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),:;<>[\\]", c) >= 0 {
			return false
		}
	}
	at := strings.IndexByte(s, '@')
	if at == 0 || at > 64 || !validDomain(s[at+1:]) {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s
}

// FuzzParseEmail holds ParseEmail to net/mail's reading of an addr-spec
// (within the stricter character set ParseEmail allows).
func FuzzParseEmail(f *testing.F) {
	for _, s := range []string{
		"user@example", "User.Name+tag@Example.COM", "o'brien@example.com", ".a@b", "a.@b", "a..b@c",
		"a.b.c@d.e", "!#$%&'*+-/=?^_`{|}~@x", "a@b.", "a@.b", "a@b-c.d", "\"a\"@b", "a b@c", "a@[1.2.3.4]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, err := ParseEmail(s)
		if got, want := err == nil, referenceParseEmail(s); got != want {
			t.Fatalf("ParseEmail(%q) accepts %v, net/mail %v", s, got, want)
		}
	})
}

// referencePhoneParse is PhoneParser.Parse as it was with a separate
// IsValidNumberForRegion check: the oracle of TestPhoneParseReference.
func referencePhoneParse(p *PhoneParser, s string) (string, bool) {
	if len(s) < 2 || len(s) > 20 || s[0] != '+' {
		return "", false
	}
	digits := make([]byte, 0, len(s))
	space := -1
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits = append(digits, c)
		case c == ' ' && space < 0 && i > 1 && i < len(s)-1:
			space = len(digits)
		default:
			return "", false
		}
	}
	num, err := phonenumbers.Parse("+"+string(digits), "")
	if err != nil {
		return "", false
	}
	if space >= 0 && space != len(strconv.Itoa(int(num.GetCountryCode()))) {
		return "", false
	}
	region := phonenumbers.GetRegionCodeForNumber(num)
	if !p.regions[region] || !phonenumbers.IsValidNumberForRegion(num, region) {
		return "", false
	}
	switch phonenumbers.GetNumberType(num) {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
	default:
		return "", false
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	return e164, e164 == "+"+string(digits)
}

// TestPhoneParseReference holds Parse to the reference for the example
// numbers of every type of every region the library knows, and variants of
// them, under a parser allowing all regions and one allowing only CN.
func TestPhoneParseReference(t *testing.T) {
	var all []string
	for r := range phonenumbers.GetSupportedRegions() {
		all = append(all, r)
	}
	everywhere, err := NewPhoneParser(all)
	if err != nil {
		t.Fatal(err)
	}
	cn, _ := NewPhoneParser([]string{"CN"})
	types := []phonenumbers.PhoneNumberType{
		phonenumbers.MOBILE, phonenumbers.FIXED_LINE, phonenumbers.FIXED_LINE_OR_MOBILE, phonenumbers.TOLL_FREE,
		phonenumbers.PREMIUM_RATE, phonenumbers.VOIP, phonenumbers.PAGER, phonenumbers.UAN, phonenumbers.PERSONAL_NUMBER,
	}
	checked, accepted := 0, 0
	for _, r := range all {
		for _, typ := range types {
			num := phonenumbers.GetExampleNumberForType(r, typ)
			if num == nil {
				continue
			}
			e164 := phonenumbers.Format(num, phonenumbers.E164)
			cc := strconv.Itoa(int(num.GetCountryCode()))
			nsn := e164[1+len(cc):]
			for _, in := range []string{
				e164, "+" + cc + " " + nsn, e164 + "0", e164[:len(e164)-1], "+" + cc + "0" + nsn,
				"+" + cc + nsn[:1] + " " + nsn[1:], e164[:len(e164)-1] + "9",
			} {
				for _, p := range []*PhoneParser{everywhere, cn} {
					want, ok := referencePhoneParse(p, in)
					a, err := p.Parse(in)
					if (err == nil) != ok || ok && a.Identity != want {
						t.Errorf("Parse(%q) = %q, %v; reference %q, %v", in, a.Identity, err, want, ok)
					}
					checked++
					if ok {
						accepted++
					}
				}
			}
		}
	}
	t.Logf("%d inputs, %d accepted by both", checked, accepted)
}

package verification

import (
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Channel is how a code travels.
type Channel string

// The two channels.
const (
	SMS   Channel = "sms"
	Email Channel = "email"
)

// Target says what the caller expects of the account behind an address.
type Target string

// The three targets of the API, spelled exactly as clients send them.
const (
	TargetAny     Target = "ANY"      // send whether or not a user exists
	TargetUser    Target = "USER"     // a user must exist
	TargetNotUser Target = "NOT_USER" // no user may exist
)

// ParseTarget accepts exactly the three spellings of the API.
func ParseTarget(s string) (Target, error) {
	switch t := Target(s); t {
	case TargetAny, TargetUser, TargetNotUser:
		return t, nil
	}
	return "", Errorf(KindInvalidTarget, "target must be one of ANY, USER, NOT_USER")
}

// Address is a normalised recipient: Identity is the key for storage, limits
// and user lookups (E.164 phone or lower-case email); To is where the message
// goes (E.164 for SMS, the email as the user typed it).
type Address struct {
	Channel  Channel
	Identity string
	To       string
}

// PhoneParser validates phone numbers against a set of allowed regions.
type PhoneParser struct {
	regions map[string]bool
}

// NewPhoneParser returns a parser accepting mobile numbers of the given ISO
// 3166 regions ("CN", "HK", ...). Unknown regions are an error.
func NewPhoneParser(regions []string) (*PhoneParser, error) {
	p := &PhoneParser{regions: map[string]bool{}}
	supported := phonenumbers.GetSupportedRegions()
	for _, r := range regions {
		r = strings.ToUpper(strings.TrimSpace(r))
		if !supported[r] {
			return nil, Errorf(KindInternal, "unknown phone region %q", r)
		}
		p.regions[r] = true
	}
	return p, nil
}

var errPhone = Errorf(KindInvalidPhoneNumber, "Phone number format error, needs +86 prefix, e.g. \"+86 13800138000\"")

// Parse checks the strict wire shape ("+", country code, at most one space
// right after it, ASCII digits) and then lets libphonenumber decide whether
// the number is a real mobile number of an allowed region. The shape check
// comes first so that the library's leniency (it strips punctuation, reads
// full-width digits, accepts national forms) never widens what we accept.
func (p *PhoneParser) Parse(s string) (Address, error) {
	if len(s) < 2 || len(s) > 20 || s[0] != '+' {
		return Address{}, errPhone
	}
	plus := make([]byte, 1, len(s)) // "+" and the digits
	plus[0] = '+'
	space := -1
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			plus = append(plus, c)
		case c == ' ' && space < 0 && i > 1 && i < len(s)-1:
			space = len(plus) - 1
		default:
			return Address{}, errPhone
		}
	}
	wire := string(plus)
	num, err := phonenumbers.Parse(wire, "")
	if err != nil {
		return Address{}, errPhone
	}
	cc := num.GetCountryCode()
	// The one space may only separate the country code from the number.
	if space >= 0 && space != len(strconv.Itoa(int(cc))) {
		return Address{}, errPhone
	}
	// The number's own region must be allowed, and the number valid there
	// and a mobile one. GetNumberType reads the metadata of that same region
	// and answers UNKNOWN for a number invalid there, so it is also the
	// validity check (IsValidNumberForRegion would run the same matching a
	// second time).
	if !p.regions[phonenumbers.GetRegionCodeForNumber(num)] {
		return Address{}, errPhone
	}
	switch phonenumbers.GetNumberType(num) {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
	default:
		return Address{}, errPhone
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	// Leading zeros or other digits the library would drop must not make two
	// different strings one number.
	if e164 != wire {
		return Address{}, errPhone
	}
	return Address{Channel: SMS, Identity: e164, To: e164}, nil
}

var errEmail = Errorf(KindInvalidEmail, "Email format error, expected a bare address such as user@example.com")

// ParseEmail accepts a bare address local@domain: printable ASCII, one "@",
// a dot-atom local part of at most 64 characters, a domain of letters, digits
// and hyphens in dot-separated labels (one label is allowed, as in the API's
// own example "user@example"), at most 254 characters in all. Display names,
// comments, quoted local parts and domain literals are refused, so what we
// store is exactly one mailbox.
func ParseEmail(s string) (Address, error) {
	if len(s) < 3 || len(s) > 254 || strings.Count(s, "@") != 1 {
		return Address{}, errEmail
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),:;<>[\\]", c) >= 0 {
			return Address{}, errEmail
		}
	}
	at := strings.IndexByte(s, '@')
	local, domain := s[:at], s[at+1:]
	if len(local) == 0 || len(local) > 64 || !validDomain(domain) {
		return Address{}, errEmail
	}
	// The local part must be a dot-atom (RFC 5322 3.2.3). The loop above
	// left only atext characters and dots in it, so what remains is the dots:
	// none leading, trailing or doubled. (This is what net/mail checks; the
	// tests hold the two to the same answers.)
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return Address{}, errEmail
	}
	return Address{Channel: Email, Identity: strings.ToLower(s), To: s}, nil
}

func validDomain(d string) bool {
	if len(d) == 0 || len(d) > 253 {
		return false
	}
	for label := range strings.SplitSeq(d, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i] | 0x20
			if !(c >= 'a' && c <= 'z' || label[i] >= '0' && label[i] <= '9' || label[i] == '-') {
				return false
			}
		}
	}
	return true
}

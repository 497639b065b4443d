package logging

import (
	"regexp"
	"strings"

	"github.com/verifykit/verifykit/internal/verification"
)

// Free text that may quote a recipient: an email address, or a run of at
// least 7 digits (single spaces allowed between them, a "+" before them).
var (
	emailPattern = regexp.MustCompile(`[^\s<>()\[\]\\,;:@"']+@[^\s<>()\[\]\\,;:@"']+`)
	phonePattern = regexp.MustCompile(`\+?[0-9](?: ?[0-9]){6,}`)
)

// Redact masks every email address and phone-number-like digit run in s, the
// way Mask does ("u***@example.com", "+86 138****8000"), so that error texts
// from providers and stores can be logged: SES names unverified recipients,
// SNS repeats an invalid number, SMTP servers quote the address they refuse.
// Digit runs inside identifiers (request ids, hex) are left alone.
func Redact(s string) string {
	s = emailPattern.ReplaceAllStringFunc(s, func(m string) string {
		return Mask(verification.Address{Channel: verification.Email, Identity: m})
	})
	idx := phonePattern.FindAllStringIndex(s, -1)
	if idx == nil {
		return s
	}
	var b strings.Builder
	last := 0
	for _, m := range idx {
		start, end := m[0], m[1]
		// A '.' may end a sentence after a number, but not start one.
		if (start > 0 && (identChar(s[start-1]) || s[start-1] == '.')) || (end < len(s) && identChar(s[end])) {
			continue
		}
		b.WriteString(s[last:start])
		b.WriteString(maskDigits(s[start:end]))
		last = end
	}
	b.WriteString(s[last:])
	return b.String()
}

// identChar is a character that makes a digit run part of a longer token
// (an id, a hex string, a UUID) rather than a number on its own.
func identChar(c byte) bool {
	return c == '-' || c == '_' || c == '/' || (c|0x20 >= 'a' && c|0x20 <= 'z')
}

// maskDigits masks a phone-like digit run: as Mask does for an E.164 number,
// otherwise keeping its first 3 and last 4 digits only when at least 4 are
// hidden.
func maskDigits(m string) string {
	digits := strings.ReplaceAll(m, " ", "")
	if strings.HasPrefix(digits, "+") {
		if masked := Mask(verification.Address{Channel: verification.SMS, Identity: digits}); masked != "***" {
			return masked
		}
		digits = digits[1:]
	}
	if len(digits) < 11 {
		return "****" + digits[len(digits)-2:]
	}
	return digits[:3] + "****" + digits[len(digits)-4:]
}

package httpapi

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// DefaultIPv6PrefixBits groups IPv6 clients by their /64: one subscriber
// line or host usually holds a whole /64, and rotating addresses inside it
// costs nothing.
const DefaultIPv6PrefixBits = 64

// ClientIP turns the platform's source IP (and, behind trusted proxies, the
// X-Forwarded-For entries they wrote) into the IP key every per-IP limit and
// gate counts under. The zero value trusts no proxy and groups IPv6 by /64.
type ClientIP struct {
	// IPv6PrefixBits (32-128) is the prefix that one IPv6 key covers; 0
	// means DefaultIPv6PrefixBits.
	IPv6PrefixBits int
	// TrustedProxyHops is the number of trusted proxies (CloudFront, a load
	// balancer) in front of API Gateway; 0 ignores X-Forwarded-For.
	TrustedProxyHops int
}

// errNoClientIP: the platform gave no usable source IP, or the trusted
// proxies' X-Forwarded-For entries are missing or malformed. Such a request
// is refused: it must not share one empty-string budget with all the others.
var errNoClientIP = errors.New("missing_source_ip")

// Key returns the IP key of a request whose platform observed source and
// whose X-Forwarded-For header (every line, joined by commas) is xff.
//
// With TrustedProxyHops = N > 0, each trusted proxy appended the address it
// saw, so the client is the Nth entry from the right, after dropping a last
// entry equal to source (API Gateway may append it). Entries further left
// were written by the client and are never read, not even parsed.
func (c ClientIP) Key(source, xff string) (string, error) {
	src, err := parseIP(source)
	if err != nil {
		return "", fmt.Errorf("%w: source IP %q is not an IP address", errNoClientIP, source)
	}
	addr := src
	if n := c.TrustedProxyHops; n > 0 {
		var entries []string
		if strings.TrimSpace(xff) != "" {
			entries = strings.Split(xff, ",")
		}
		if k := len(entries); k > 0 {
			if last, err := parseIP(entries[k-1]); err == nil && last == src {
				entries = entries[:k-1]
			}
		}
		if len(entries) < n {
			return "", fmt.Errorf("%w: %d X-Forwarded-For entries for %d trusted proxies", errNoClientIP, len(entries), n)
		}
		// The entry's text is left out of the error: a client may have
		// written it.
		if addr, err = parseIP(entries[len(entries)-n]); err != nil {
			return "", fmt.Errorf("%w: X-Forwarded-For entry %d from the right is not an IP address", errNoClientIP, n)
		}
	}
	return c.key(addr), nil
}

// key is the canonical text of an IPv4 address, or of the IPv6 prefix that
// holds addr ("2001:db8:1:2::/64").
func (c ClientIP) key(addr netip.Addr) string {
	if addr.Is4() {
		return addr.String()
	}
	bits := c.IPv6PrefixBits
	if bits == 0 {
		bits = DefaultIPv6PrefixBits
	}
	p, _ := addr.Prefix(bits)
	return p.String()
}

// parseIP parses one address in canonical form: an IPv4-mapped IPv6 address
// (::ffff:192.0.2.1) is its IPv4 address, so one client cannot hold two
// budgets. Zones and ports are not addresses a platform reports, and are
// refused.
func parseIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, err
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("address %q has a zone", s)
	}
	return a.Unmap(), nil
}

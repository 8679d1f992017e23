// Package urlhash computes Concord's URL hash (HASH_KIND_URL_SHA256): the SHA-256 of a
// normalised URL. Sharing the hash of a URL instead of the URL lets authorities distribute
// blocking lists without publishing a directory of the content they block; a platform hashes
// the URLs it sees and looks the hashes up.
//
// Two spellings of the same address must give the same hash, so the URL is normalised first.
// The normalisation below is the specification: an implementation in another language that
// follows it produces the same bytes, hence the same hash. It applies RFC 3986's syntax-based
// normalisation (§6.2.2) and its scheme-based normalisation for http and https (§6.2.3), plus
// IDNA for host names. It is deliberately not the WHATWG URL parser: backslashes, tabs and
// numeric IPv4 forms (such as http://0x7f.1/) are not reinterpreted.
//
// # Normalisation
//
// Input is a string of bytes (UTF-8 expected). Steps, in order:
//
//  1. Trim. Remove leading and trailing ASCII whitespace (space, tab, LF, VT, FF, CR).
//  2. Scheme. The scheme is everything before the first ":"; it must be "http" or "https" in
//     any letter case, and is written in lower case. Any other scheme, or no ":" at all, is
//     an error (ErrUnsupportedScheme).
//  3. Split. After "scheme:" must come "//" (else ErrNoHost). The authority runs from there to
//     the first "/", "?" or "#"; the path from there to the first "?" or "#"; the query from
//     after that "?" to the first "#". The fragment (from the first "#") is removed.
//  4. Userinfo. If the authority contains "@", the userinfo is everything before its last "@"
//     and the host and port everything after. The userinfo is kept, percent-normalised as in
//     step 8 with unreserved characters, sub-delims and ":" left as they are; an empty
//     userinfo is dropped along with its "@".
//  5. Port. For a host in brackets, the port follows the "]" after a ":"; otherwise it is what
//     follows the first ":". It must be ASCII digits with a value of at most 65535 (else
//     ErrInvalid) and is written in decimal without leading zeros. It is removed when empty,
//     or when it is the scheme's default (80 for http, 443 for https).
//  6. Host in brackets (an IP literal). "[v…]" (IPvFuture) is lower-cased. Anything else must
//     be an IPv6 address without a zone (else ErrInvalid) and is written in the RFC 5952
//     canonical form: lower-case hex, leading zeros dropped, the longest run of zero groups
//     as "::" (e.g. [2001:DB8:0:0:0:0:0:1] → [2001:db8::1]); an embedded IPv4 suffix stays
//     dotted only for IPv4-mapped addresses (::ffff:192.0.2.1).
//  7. Other hosts. (a) Decode every percent-encoded octet; the result must be valid UTF-8.
//     (b) Remove one trailing ".". (c) Convert to ASCII with UTS #46 processing (ToASCII):
//     the mapping step (which lower-cases, applies NFC and width folding), non-transitional
//     (ß stays ß and becomes xn--fa-hia), CheckBidi and CheckJoiners on, CheckHyphens off
//     (labels such as "r3---sn-x" are common), UseSTD3ASCIIRules off (so "_" is allowed),
//     VerifyDnsLength off; each non-ASCII label becomes "xn--" + Punycode. (The Go code uses
//     golang.org/x/net/idna, whose tables are Unicode 15.0.0 under Go 1.26: a host using
//     characters assigned later may differ between implementations on other versions.) (d) The result must be non-empty, without empty labels, and use only
//     a–z, 0–9, "-", "_" and "." (else ErrInvalid). An empty host is ErrNoHost. (e) The
//     result must read back: taken through (c) and (d) again it gives itself, else ErrInvalid.
//     Only an "xn--" label can fail to: golang.org/x/net/idna does not decode Punycode into
//     more than 1 024 characters (a DNS label has at most 63 octets), though it encodes them.
//  8. Percent-encoding, in the path, query and userinfo: a "%" followed by two hex digits is
//     decoded when the octet is unreserved (A–Z a–z 0–9 - . _ ~) and otherwise kept with its
//     hex digits in upper case ("%2f" → "%2F"); a "%" not followed by two hex digits becomes
//     "%25"; any octet that the component does not allow unencoded becomes "%" and two
//     upper-case hex digits. The path allows unreserved, sub-delims (! $ & ' ( ) * + , ; =),
//     ":", "@" and "/"; the query also "?". So a space becomes %20, "é" %C3%A9, and
//     " < > \ ^ ` { | } [ ] and control octets are encoded.
//  9. Path. After step 8, dot segments are removed as RFC 3986 §5.2.4 specifies ("/a/./b/../c"
//     → "/a/c"; "%2E" has become "." by then). An empty path becomes "/". Empty segments
//     ("//") are kept.
//  10. Query. Kept, in its order, with only step 8 applied. A "?" with nothing after it is
//     kept.
//  11. Assembly. scheme "://" [userinfo "@"] host [":" port] path ["?" query].
//
// The URL hash is SHA-256 of the assembled string's bytes (Hash).
//
// Examples: "HTTP://User@Example.COM:80/a/./b/%7euser/../c%2f?q=a b#top" normalises to
// "http://User@example.com/a/b/c%2F?q=a%20b"; "https://münchen.de." to
// "https://xn--mnchen-3ya.de/".
package urlhash

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Errors, for errors.Is. Each returned error also quotes the input and says what to fix.
var (
	// ErrUnsupportedScheme: not an http or https URL.
	ErrUnsupportedScheme = errors.New("urlhash: only http and https URLs can be hashed")
	// ErrNoHost: the URL names no host.
	ErrNoHost = errors.New("urlhash: URL has no host")
	// ErrInvalid: a malformed host, port or IP literal.
	ErrInvalid = errors.New("urlhash: malformed URL")
)

// Hash returns the URL hash: SHA-256 of Normalize(rawURL).
func Hash(rawURL string) ([sha256.Size]byte, error) {
	n, err := Normalize(rawURL)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256([]byte(n)), nil
}

// idnaProfile is UTS #46 lookup processing, non-transitional, with the checks browsers skip
// turned off: host names in the wild contain "_" (refused by STD3 rules) and labels such as
// "r3---sn-x" (refused by CheckHyphens). Options apply in order, so the last ones win.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.BidiRule(),
	idna.CheckJoiners(true),
	idna.CheckHyphens(false),
	idna.StrictDomainName(false),
	idna.VerifyDNSLength(false),
)

// Normalize returns the normalised form of an http or https URL, as the package comment
// specifies.
func Normalize(rawURL string) (string, error) {
	s := strings.Trim(rawURL, " \t\n\v\f\r")

	colon := strings.IndexByte(s, ':')
	if colon < 0 {
		return "", fmt.Errorf("%w: %q has no scheme: write the full URL, starting with http:// or https://",
			ErrUnsupportedScheme, rawURL)
	}
	scheme := strings.ToLower(s[:colon])
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("%w: %q has scheme %q", ErrUnsupportedScheme, rawURL, scheme)
	}
	rest := s[colon+1:]
	if !strings.HasPrefix(rest, "//") {
		return "", fmt.Errorf("%w: %q: want %s:// followed by a host", ErrNoHost, rawURL, scheme)
	}
	rest = rest[2:]
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i]
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, rest = rest[:i], rest[i:]
	} else {
		rest = ""
	}
	path, query, hasQuery := strings.Cut(rest, "?")

	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(scheme)
	b.WriteString("://")

	hostport := authority
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		if userinfo := authority[:at]; userinfo != "" {
			b.WriteString(normalizePercent(userinfo, userinfoChars))
			b.WriteByte('@')
		}
		hostport = authority[at+1:]
	}
	host, port, err := splitHostPort(hostport)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrInvalid, rawURL, err)
	}
	if host == "" {
		return "", fmt.Errorf("%w: %q: write a host name or address after %s://", ErrNoHost, rawURL, scheme)
	}
	host, err = normalizeHost(host)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrInvalid, rawURL, err)
	}
	b.WriteString(host)
	port, err = normalizePort(port, scheme)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrInvalid, rawURL, err)
	}
	if port != "" {
		b.WriteByte(':')
		b.WriteString(port)
	}

	path = removeDotSegments(normalizePercent(path, pathChars))
	if path == "" {
		path = "/"
	}
	b.WriteString(path)
	if hasQuery {
		b.WriteByte('?')
		b.WriteString(normalizePercent(query, queryChars))
	}
	return b.String(), nil
}

// splitHostPort separates host and port; the port is "" when absent or empty.
func splitHostPort(hostport string) (host, port string, err error) {
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return "", "", fmt.Errorf("IP literal %q lacks its closing ]", hostport)
		}
		host, after := hostport[:end+1], hostport[end+1:]
		if after == "" {
			return host, "", nil
		}
		if after[0] != ':' {
			return "", "", fmt.Errorf("unexpected %q after the IP literal: want :port or nothing", after)
		}
		return host, after[1:], nil
	}
	host, port, _ = strings.Cut(hostport, ":")
	return host, port, nil
}

func normalizePort(port, scheme string) (string, error) {
	if port == "" {
		return "", nil
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return "", fmt.Errorf("port %q is not a number", port)
		}
	}
	trimmed := strings.TrimLeft(port, "0")
	if len(trimmed) > 5 {
		return "", fmt.Errorf("port %s is above 65535", port)
	}
	n, _ := strconv.Atoi(trimmed) // "" (all zeros) gives 0
	switch {
	case n > 65535:
		return "", fmt.Errorf("port %s is above 65535", port)
	case scheme == "http" && n == 80, scheme == "https" && n == 443:
		return "", nil
	}
	return strconv.Itoa(n), nil
}

func normalizeHost(host string) (string, error) {
	if strings.HasPrefix(host, "[") {
		return normalizeIPLiteral(host[1 : len(host)-1])
	}
	decoded, err := percentDecode(host)
	if err != nil {
		return "", fmt.Errorf("host %q: %v", host, err)
	}
	if !utf8.ValidString(decoded) {
		return "", fmt.Errorf("host %q is not valid UTF-8 once percent-decoded", host)
	}
	if len(decoded) > 1 {
		decoded = strings.TrimSuffix(decoded, ".")
	}
	ascii, err := idnaProfile.ToASCII(decoded)
	if err != nil {
		return "", fmt.Errorf("host %q is not a valid international domain name: %v", host, err)
	}
	ascii = strings.ToLower(ascii)
	if ascii == "" {
		return "", fmt.Errorf("host %q is empty", host)
	}
	for label := range strings.SplitSeq(ascii, ".") {
		if label == "" {
			return "", fmt.Errorf("host %q has an empty label (two dots in a row, or a leading dot)", host)
		}
	}
	for i := 0; i < len(ascii); i++ {
		c := ascii[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return "", fmt.Errorf("host %q contains %q: a host name has letters, digits, - and _ only", host, c)
		}
	}
	// The normal form must be a fixed point, or its own hash could not be computed from it.
	if strings.Contains(ascii, "xn--") {
		if again, err := idnaProfile.ToASCII(ascii); err != nil || strings.ToLower(again) != ascii {
			return "", fmt.Errorf("host %q becomes %q, which does not read back as the same host (a label of more than 1 024 characters?)", host, ascii)
		}
	}
	return ascii, nil
}

func normalizeIPLiteral(lit string) (string, error) {
	if strings.HasPrefix(lit, "v") || strings.HasPrefix(lit, "V") {
		for i := 0; i < len(lit); i++ {
			if c := lit[i]; c <= ' ' || c >= 0x7f || c == '[' || c == ']' || c == '/' || c == '?' || c == '#' || c == '@' {
				return "", fmt.Errorf("IP literal [%s] contains %q", lit, c)
			}
		}
		return "[" + strings.ToLower(lit) + "]", nil
	}
	if strings.Contains(lit, "%") {
		return "", fmt.Errorf("IPv6 address [%s] has a zone, which has no meaning outside one machine: remove it", lit)
	}
	addr, err := netip.ParseAddr(lit)
	if err != nil || !addr.Is6() {
		return "", fmt.Errorf("[%s] is not an IPv6 address", lit)
	}
	return "[" + addr.String() + "]", nil
}

// percentDecode decodes every %XX; a "%" without two hex digits is an error.
func percentDecode(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			out = append(out, s[i])
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", fmt.Errorf("%q is not a percent-encoded octet", s[i:min(i+3, len(s))])
		}
		out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
		i += 2
	}
	return string(out), nil
}

// removeDotSegments is RFC 3986 §5.2.4, on a path that starts with "/" or is empty.
func removeDotSegments(path string) string {
	if !strings.Contains(path, ".") {
		return path
	}
	in := path
	out := make([]string, 0, strings.Count(path, "/"))
	for in != "" {
		switch {
		case strings.HasPrefix(in, "../"):
			in = in[3:]
		case strings.HasPrefix(in, "./"):
			in = in[2:]
		case strings.HasPrefix(in, "/./"):
			in = in[2:]
		case in == "/.":
			in = "/"
		case strings.HasPrefix(in, "/../"):
			in = in[3:]
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case in == "/..":
			in = "/"
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case in == "." || in == "..":
			in = ""
		default:
			// Move the first segment, with its leading "/", to the output.
			end := strings.IndexByte(in[1:], '/')
			if end < 0 {
				end = len(in)
			} else {
				end++
			}
			out = append(out, in[:end])
			in = in[end:]
		}
	}
	return strings.Join(out, "")
}

package urlhash

// charSet says which octets a URL component may hold without percent-encoding.
type charSet [256]bool

func makeSet(extra string) *charSet {
	var s charSet
	for c := 'a'; c <= 'z'; c++ {
		s[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		s[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		s[c] = true
	}
	for _, c := range "-._~" + extra { // unreserved, then the component's own
		s[c] = true
	}
	return &s
}

const subDelims = "!$&'()*+,;="

var (
	userinfoChars = makeSet(subDelims + ":")
	pathChars     = makeSet(subDelims + ":@/")
	queryChars    = makeSet(subDelims + ":@/?")
)

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

const upperHex = "0123456789ABCDEF"

// normalizePercent applies step 8 of the package comment to one component: decode
// percent-encoded unreserved octets, upper-case the hex of the others, encode a stray "%" and
// every octet the component does not allow.
func normalizePercent(s string, allowed *charSet) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '%' || !allowed[c] {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	out := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			v := unhex(s[i+1])<<4 | unhex(s[i+2])
			if isUnreserved(v) {
				out = append(out, v)
			} else {
				out = append(out, '%', upperHex[v>>4], upperHex[v&15])
			}
			i += 2
		case c != '%' && allowed[c]:
			out = append(out, c)
		default: // a stray "%", or an octet that must be encoded
			out = append(out, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return string(out)
}

package urlhash

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		// Scheme and host case.
		{"lower-case scheme and host", "HTTP://Example.COM/", "http://example.com/"},
		{"mixed-case https", "HtTpS://EXAMPLE.com/Path", "https://example.com/Path"},
		{"path case is kept", "http://example.com/A/b/C", "http://example.com/A/b/C"},
		// Empty path.
		{"empty path becomes /", "http://example.com", "http://example.com/"},
		{"empty path before a query", "http://example.com?q=1", "http://example.com/?q=1"},
		{"empty path before a fragment", "http://example.com#top", "http://example.com/"},
		// Ports.
		{"http default port", "http://example.com:80/a", "http://example.com/a"},
		{"https default port", "https://example.com:443/a", "https://example.com/a"},
		{"443 is not http's default", "http://example.com:443/", "http://example.com:443/"},
		{"80 is not https's default", "https://example.com:80/", "https://example.com:80/"},
		{"empty port", "http://example.com:/", "http://example.com/"},
		{"leading zeros", "http://example.com:0080/", "http://example.com/"},
		{"other port kept", "http://example.com:8080/", "http://example.com:8080/"},
		{"other port without zeros", "https://example.com:08443/", "https://example.com:8443/"},
		{"port 0", "http://example.com:000/", "http://example.com:0/"},
		{"port 65535", "http://example.com:65535/", "http://example.com:65535/"},
		// Trailing dot.
		{"trailing dot", "http://example.com./", "http://example.com/"},
		{"trailing dot and port", "http://Example.com.:80", "http://example.com/"},
		// IDNA.
		{"IDN to punycode", "http://münchen.de/", "http://xn--mnchen-3ya.de/"},
		{"IDN upper case", "http://MÜNCHEN.DE/", "http://xn--mnchen-3ya.de/"},
		{"non-transitional ß", "http://faß.de/", "http://xn--fa-hia.de/"},
		{"punycode kept", "http://XN--MNCHEN-3YA.de/", "http://xn--mnchen-3ya.de/"},
		{"full-width letters folded", "http://ｅｘａｍｐｌｅ.com/", "http://example.com/"},
		{"percent-encoded host", "http://ex%61mple.com/", "http://example.com/"},
		{"percent-encoded IDN host", "http://%E2%98%83.net/", "http://xn--n3h.net/"},
		{"underscore allowed", "http://my_site.example.com/", "http://my_site.example.com/"},
		{"hyphens in third and fourth place allowed", "http://r3---sn-apo3qvuoxuxbt-j5pe.googlevideo.com/", "http://r3---sn-apo3qvuoxuxbt-j5pe.googlevideo.com/"},
		{"leading hyphen allowed", "http://-dash.example.com/", "http://-dash.example.com/"},
		{"ideographic full stop is a dot", "http://example\u3002com/", "http://example.com/"},
		{"IPv4 kept", "http://192.0.2.1:8080/x", "http://192.0.2.1:8080/x"},
		// IP literals.
		{"IPv6 lower-cased and compressed", "http://[2001:DB8:0:0:0:0:0:1]/", "http://[2001:db8::1]/"},
		{"IPv6 with port", "https://[2001:db8::1]:8443/", "https://[2001:db8::1]:8443/"},
		{"IPv6 default port", "https://[2001:db8::1]:443/", "https://[2001:db8::1]/"},
		{"IPv4-mapped IPv6", "http://[::FFFF:192.0.2.1]/", "http://[::ffff:192.0.2.1]/"},
		{"IPvFuture lower-cased", "http://[V7.Foo]/", "http://[v7.foo]/"},
		// Userinfo.
		{"userinfo kept, host lowered", "http://User:Pass@Example.com/", "http://User:Pass@example.com/"},
		{"userinfo percent-normalised", "http://us%65r:p%3aw@example.com/", "http://user:p%3Aw@example.com/"},
		{"last @ separates the host", "http://a@b@example.com/", "http://a%40b@example.com/"},
		{"empty userinfo dropped", "http://@example.com/", "http://example.com/"},
		// Percent-encoding.
		{"unreserved decoded", "http://example.com/%7Euser/%41%42c%2d%2E%5f", "http://example.com/~user/ABc-._"},
		{"reserved stays encoded, hex upper-cased", "http://example.com/a%2fb%3F", "http://example.com/a%2Fb%3F"},
		{"space encoded", "http://example.com/a b", "http://example.com/a%20b"},
		{"UTF-8 encoded", "http://example.com/café", "http://example.com/caf%C3%A9"},
		{"encoded UTF-8 upper-cased", "http://example.com/caf%c3%a9", "http://example.com/caf%C3%A9"},
		{"stray percent", "http://example.com/100%", "http://example.com/100%25"},
		{"percent without hex", "http://example.com/%zz%4", "http://example.com/%25zz%254"},
		{"characters that must be encoded", "http://example.com/\"<>\\^`{|}[]", "http://example.com/%22%3C%3E%5C%5E%60%7B%7C%7D%5B%5D"},
		{"control octets encoded", "http://example.com/a\x00b\x7f", "http://example.com/a%00b%7F"},
		{"allowed path characters kept", "http://example.com/a:b@c!$&'()*+,;=", "http://example.com/a:b@c!$&'()*+,;="},
		// Dot segments.
		{"dot segments", "http://example.com/a/./b/../c", "http://example.com/a/c"},
		{"encoded dot segments", "http://example.com/a/%2e%2E/c", "http://example.com/c"},
		{"dot-dot above the root", "http://example.com/../../a", "http://example.com/a"},
		{"trailing dot-dot", "http://example.com/a/b/..", "http://example.com/a/"},
		{"only dot-dot", "http://example.com/..", "http://example.com/"},
		{"dots inside names kept", "http://example.com/a..b/.c/file.tar.gz", "http://example.com/a..b/.c/file.tar.gz"},
		{"trailing slash kept", "http://example.com/a/b/", "http://example.com/a/b/"},
		{"empty segments kept", "http://example.com//a//b", "http://example.com//a//b"},
		// Query.
		{"query order kept", "http://example.com/p?b=2&a=1", "http://example.com/p?b=2&a=1"},
		{"query percent-normalised", "http://example.com/?q=a+b%2bc%2fd%7e", "http://example.com/?q=a+b%2Bc%2Fd~"},
		{"query space encoded", "http://example.com/?q=hello world", "http://example.com/?q=hello%20world"},
		{"query keeps / and ?", "http://example.com/?next=/a?b", "http://example.com/?next=/a?b"},
		{"empty query kept", "http://example.com/?", "http://example.com/?"},
		{"dots in the query untouched", "http://example.com/?p=../a/./b", "http://example.com/?p=../a/./b"},
		// Fragment.
		{"fragment removed", "http://example.com/a#frag", "http://example.com/a"},
		{"fragment after a query removed", "http://example.com/a?x=1#frag?y=2", "http://example.com/a?x=1"},
		{"fragment with slashes", "http://example.com#/route/x", "http://example.com/"},
		// Whitespace.
		{"surrounding whitespace trimmed", " \t http://example.com/a \r\n", "http://example.com/a"},
		// Everything at once (the package comment's example).
		{"package example", "HTTP://User@Example.COM:80/a/./b/%7euser/../c%2f?q=a b#top", "http://User@example.com/a/b/c%2F?q=a%20b"},
		{"package IDN example", "https://münchen.de.", "https://xn--mnchen-3ya.de/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Normalize(tt.in)
			if err != nil {
				t.Fatalf("Normalize(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
			// Normalising is idempotent: a normalised URL is its own normal form.
			again, err := Normalize(got)
			if err != nil || again != got {
				t.Errorf("Normalize(%q) = %q, %v; want it unchanged", got, again, err)
			}
		})
	}
}

func TestNormalizeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     error
		mention  string
	}{
		{"ftp", "ftp://example.com/file", ErrUnsupportedScheme, `"ftp"`},
		{"javascript", "javascript:alert(1)", ErrUnsupportedScheme, "http"},
		{"mailto", "mailto:someone@example.com", ErrUnsupportedScheme, "mailto"},
		{"no scheme", "example.com/path", ErrUnsupportedScheme, "http://"},
		{"host and port without scheme", "localhost:8080/x", ErrUnsupportedScheme, "localhost"},
		{"empty", "", ErrUnsupportedScheme, "http://"},
		{"scheme only", "http:", ErrNoHost, "http://"},
		{"no slashes", "http:example.com", ErrNoHost, "http://"},
		{"empty authority", "http:///path", ErrNoHost, "host"},
		{"nothing after //", "https://", ErrNoHost, "host"},
		{"port only", "http://:8080/", ErrNoHost, "host"},
		{"userinfo only", "http://user@/", ErrNoHost, "host"},
		{"port not a number", "http://example.com:8a/", ErrInvalid, "not a number"},
		{"port too large", "http://example.com:65536/", ErrInvalid, "65535"},
		{"port far too large", "http://example.com:99999999999999999999/", ErrInvalid, "65535"},
		{"empty label", "http://example..com/", ErrInvalid, "empty label"},
		{"two trailing dots", "http://example.com../", ErrInvalid, "empty label"},
		{"leading dot", "http://.example.com/", ErrInvalid, "empty label"},
		{"space in host", "http://exa mple.com/", ErrInvalid, "host"},
		{"bad percent in host", "http://ex%zzample.com/", ErrInvalid, "percent"},
		{"invalid UTF-8 host", "http://%FF.com/", ErrInvalid, "UTF-8"},
		{"unclosed IP literal", "http://[2001:db8::1/", ErrInvalid, "]"},
		{"not an IPv6 address", "http://[example.com]/", ErrInvalid, "IPv6"},
		{"IPv4 in brackets", "http://[192.0.2.1]/", ErrInvalid, "IPv6"},
		{"IPv6 zone", "http://[fe80::1%25eth0]/", ErrInvalid, "zone"},
		{"junk after IP literal", "http://[::1]x/", ErrInvalid, "after the IP literal"},
		{"bidi violation", "http://a\u05d0.com/", ErrInvalid, "international domain name"},
		{"IDN label too long to read back", "http://" + strings.Repeat("u", 1024) + "\u00f9.com/", ErrInvalid, "does not read back"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Normalize(tt.in)
			if err == nil {
				t.Fatalf("Normalize(%q) = %q, want an error", tt.in, got)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Normalize(%q) error %v, want %v", tt.in, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
			if _, herr := Hash(tt.in); herr == nil {
				t.Errorf("Hash(%q) succeeded", tt.in)
			}
		})
	}
}

func TestHash(t *testing.T) {
	t.Parallel()
	want := sha256.Sum256([]byte("http://example.com/a%20b"))
	for _, in := range []string{"http://example.com/a%20b", "HTTP://EXAMPLE.COM:80/a b#x", "http://example.com./x/../a%20b"} {
		got, err := Hash(in)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("Hash(%q) = %x, want %x", in, got, want)
		}
	}
	other, err := Hash("https://example.com/a%20b")
	if err != nil {
		t.Fatal(err)
	}
	if other == want {
		t.Error("http and https URLs hash the same")
	}
}

func TestRemoveDotSegments(t *testing.T) {
	t.Parallel()
	// The examples of RFC 3986 §5.2.4 and §5.4.1 that apply to absolute paths.
	tests := map[string]string{
		"/a/b/c/./../../g": "/a/g",
		"/b/c/g":           "/b/c/g",
		"/b/c/g/":          "/b/c/g/",
		"/b/c/./g":         "/b/c/g",
		"/b/c/.":           "/b/c/",
		"/b/c/./":          "/b/c/",
		"/b/c/..":          "/b/",
		"/b/c/../":         "/b/",
		"/b/c/../g":        "/b/g",
		"/b/c/../..":       "/",
		"/b/c/../../g":     "/g",
		"/b/c/../../../g":  "/g",
		"/./g":             "/g",
		"/../g":            "/g",
		"/b/c/g.":          "/b/c/g.",
		"/b/c/.g":          "/b/c/.g",
		"/b/c/g..":         "/b/c/g..",
		"/b/c/..g":         "/b/c/..g",
		"/b/c/./../g":      "/b/g",
		"/b/c/./g/.":       "/b/c/g/",
		"/b/c/g/./h":       "/b/c/g/h",
		"/b/c/g/../h":      "/b/c/h",
		"":                 "",
		"/":                "/",
	}
	for in, want := range tests {
		if got := removeDotSegments(in); got != want {
			t.Errorf("removeDotSegments(%q) = %q, want %q", in, got, want)
		}
	}
}

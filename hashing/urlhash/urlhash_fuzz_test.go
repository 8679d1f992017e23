package urlhash

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
)

// FuzzNormalize: a URL that normalises gives a fixed point (its normal form normalises to
// itself, so two spellings of one address never hash apart through a second pass), of printable
// ASCII without a fragment, starting http:// or https://, whose hash is Hash's; a refused URL
// is refused with one of the package's errors. Seeds: the package comment's examples and the
// forms the specification names (IDNA, IP literals, userinfo, ports, dot segments, percents).
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"HTTP://User@Example.COM:80/a/./b/%7euser/../c%2f?q=a b#top",
		"https://münchen.de.",
		"http://faß.de/",
		"http://ｅｘａｍｐｌｅ.com/",
		"http://%E2%98%83.net/",
		"http://r3---sn-apo3qvuoxuxbt-j5pe.googlevideo.com/videoplayback?id=1&itag=22",
		"http://[2001:DB8:0:0:0:0:0:1]:8080/",
		"http://[::FFFF:192.0.2.1]/",
		"http://[V7.Foo]/",
		"https://[fe80::1%25eth0]/",
		"http://a@b@example.com:0080/%2E%2E/x/..%2F?x=%zz&y=%41",
		" \thttps://example.com:443 \n",
		"http://example\u3002com/a//b/",
		"ftp://example.com/",
		"http:example.com",
		"http://example.com:65536/",
		"http://xn--mnchen-3ya.de/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		n, err := Normalize(raw)
		if err != nil {
			if !errors.Is(err, ErrUnsupportedScheme) && !errors.Is(err, ErrNoHost) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("%q refused with %v, none of the package's errors", raw, err)
			}
			return
		}
		if !strings.HasPrefix(n, "http://") && !strings.HasPrefix(n, "https://") {
			t.Fatalf("%q normalises to %q", raw, n)
		}
		for i := 0; i < len(n); i++ {
			if c := n[i]; c <= ' ' || c >= 0x7f || c == '#' {
				t.Fatalf("%q normalises to %q, with %q at %d", raw, n, c, i)
			}
		}
		again, err := Normalize(n)
		if err != nil || again != n {
			t.Fatalf("%q normalises to %q, which normalises to %q, %v", raw, n, again, err)
		}
		h, err := Hash(raw)
		if err != nil || h != sha256.Sum256([]byte(n)) {
			t.Fatalf("Hash(%q) = %x, %v; want SHA-256 of %q", raw, h, err, n)
		}
	})
}

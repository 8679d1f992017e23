package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/internal/identity"
	"concord/internal/pki"
	"concord/server/servertest"
	"concord/translog"

	"golang.org/x/mod/sumdb/tlog"
)

// c2spPath is a tile's path as C2SP tlog-tiles writes it: level ("entries" for a bundle), the
// index in 3-digit groups all but the last prefixed with x, and .p/<width> for a partial tile.
func c2spPath(level string, n int64, width int) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n >= 1000 {
		n /= 1000
		s = fmt.Sprintf("x%03d/%s", n%1000, s)
	}
	p := "tile/" + level + "/" + s
	if width < 256 {
		p += fmt.Sprintf(".p/%d", width)
	}
	return p
}

// bundleOf is the path of the partial (or full) entry bundle that ends with entry i.
func bundleOf(i uint64) string { return c2spPath("entries", int64(i/256), int(i%256)+1) }

// tileClient fetches the log's tiles over HTTPS as one partner.
type tileClient struct {
	t    *testing.T
	hc   *http.Client
	base string
}

func newTileClient(t *testing.T, n *servertest.Node, partner string) *tileClient {
	return &tileClient{t: t, hc: httpClient(t, n.PartnerTLS(partner)), base: "https://" + n.HTTPAddr() + "/log/"}
}

// get fetches a path below /log/ and returns the response with its body read.
func (c *tileClient) get(path string) (*http.Response, []byte) {
	c.t.Helper()
	return c.do(http.MethodGet, path)
}

func (c *tileClient) do(method, path string) (*http.Response, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, body
}

// mustGet fetches a path that must be served.
func (c *tileClient) mustGet(path string) (*http.Response, []byte) {
	c.t.Helper()
	resp, body := c.get(path)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
	}
	return resp, body
}

// tileReader is a tlog.TileReader over HTTPS, as standard tile clients build one: it keeps the
// tiles that tlog has verified against the checkpoint, and fetches the others.
type tileReader struct {
	c *tileClient

	mu      sync.Mutex
	saved   map[string][]byte
	fetched map[string]int
}

func (r *tileReader) Height() int { return 8 }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		path := c2spPath(fmt.Sprint(t.L), t.N, t.W)
		r.mu.Lock()
		data, ok := r.saved[path]
		r.mu.Unlock()
		if ok {
			out[i] = data
			continue
		}
		resp, body := r.c.get(path)
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
		}
		r.mu.Lock()
		r.fetched[path]++
		r.mu.Unlock()
		out[i] = body
	}
	return out, nil
}

func (r *tileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, t := range tiles {
		r.saved[c2spPath(fmt.Sprint(t.L), t.N, t.W)] = data[i]
	}
}

// parseBundle splits an entry bundle into its entries.
func parseBundle(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var entries [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			t.Fatalf("bundle ends in the middle of a length prefix")
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			t.Fatalf("entry %d of the bundle claims %d bytes, %d left", len(entries), n, len(b)-2)
		}
		entries = append(entries, b[2:2+n])
		b = b[2+n:]
	}
	return entries
}

func TestTilesServeTheLog(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	fr := n.Client(t, "fr-pharos")

	// More than one full tile of small notices, so that level 1 is needed too.
	const small = 300
	var wg sync.WaitGroup
	errs := make(chan error, small)
	for w := range 6 {
		wg.Go(func() {
			for i := w; i < small; i += 6 {
				if _, err := fr.SubmitNotice(ctx, glorificationNotice()); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	red := glorificationNotice()
	red.Tlp, red.SharingGroup = concordv1.TLP_TLP_RED, []string{"de-bka"}
	redRec, err := fr.SubmitNotice(ctx, red)
	if err != nil {
		t.Fatal(err)
	}
	contents := make([]string, 2500)
	for i := range contents {
		contents[i] = fmt.Sprintf("bulk-%d", i)
	}
	bigRec, err := fr.SubmitNotice(ctx, glorificationNotice(contents...))
	if err != nil {
		t.Fatal(err)
	}
	redAt, bigAt := redRec.GetLogIndex(), bigRec.GetLogIndex()

	operator, member := newTileClient(t, n, "videoshare"), newTileClient(t, n, "de-bka")
	logKey, err := pki.LoadLogVerifier(n.PKI.LogPub())
	if err != nil {
		t.Fatal(err)
	}
	resp, body := operator.mustGet("checkpoint")
	cp, _, err := translog.OpenCheckpoint(string(body), logKey)
	if err != nil {
		t.Fatalf("the checkpoint does not verify with log.pub: %v\n%s", err, body)
	}
	if got := resp.Header.Get("Content-Type"); got != "text/plain; charset=utf-8" {
		t.Errorf("checkpoint Content-Type %q", got)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("checkpoint Cache-Control %q, want no-cache", got)
	}
	if cp.Size <= int64(bigAt) {
		t.Fatalf("checkpoint of %d entries, want more than %d", cp.Size, bigAt)
	}
	// The entries as GetEntries gives them to a member of the red notice's group: all of them.
	all := leaves(t, n.Client(t, "de-bka"), uint64(cp.Size))
	if len(all[bigAt].GetEntry()) <= 65535 || len(all[redAt].GetEntry()) > 65535 {
		t.Fatalf("entry %d has %d bytes, want more than 65 535; entry %d has %d, want fewer", bigAt, len(all[bigAt].GetEntry()), redAt, len(all[redAt].GetEntry()))
	}

	t.Run("hash tiles prove every entry against the checkpoint", func(t *testing.T) {
		tr := &tileReader{c: operator, saved: map[string][]byte{}, fetched: map[string]int{}}
		hr := tlog.TileHashReader(tlog.Tree{N: cp.Size, Hash: cp.Root}, tr)
		root, err := tlog.TreeHash(cp.Size, hr)
		if err != nil || root != cp.Root {
			t.Fatalf("root from the tiles: %v, %v; the checkpoint's is %v", root, err, cp.Root)
		}
		for i := range cp.Size {
			proof, err := tlog.ProveRecord(cp.Size, i, hr)
			if err != nil {
				t.Fatalf("prove entry %d from the tiles: %v", i, err)
			}
			if err := tlog.CheckRecord(proof, cp.Size, cp.Root, i, leafHash(all[i])); err != nil {
				t.Fatalf("entry %d: %v", i, err)
			}
		}
		for _, path := range []string{"tile/0/000", c2spPath("0", 1, int(cp.Size%256)), "tile/1/000.p/1"} {
			if tr.fetched[path] == 0 {
				t.Errorf("%s was never fetched (fetched: %v)", path, tr.fetched)
			}
		}
	})

	t.Run("caching", func(t *testing.T) {
		resp, body := operator.mustGet("tile/0/000")
		if len(body) != 256*32 || resp.Header.Get("Content-Type") != "application/octet-stream" {
			t.Errorf("full tile: %d bytes, %q", len(body), resp.Header.Get("Content-Type"))
		}
		if got := resp.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
			t.Errorf("full tile Cache-Control %q", got)
		}
		resp, body = operator.mustGet("tile/0/000.p/7")
		if len(body) != 7*32 || resp.Header.Get("Cache-Control") != "public, no-cache" {
			t.Errorf("partial tile: %d bytes, Cache-Control %q", len(body), resp.Header.Get("Cache-Control"))
		}
		resp, _ = operator.mustGet("tile/entries/000")
		if got := resp.Header.Get("Cache-Control"); got != "private, max-age=31536000, immutable" {
			t.Errorf("full bundle Cache-Control %q", got)
		}
		if !resp.Uncompressed {
			t.Error("the bundle was not gzipped although the client accepts gzip")
		}
		resp, body = operator.do(http.MethodHead, "tile/0/000")
		if resp.StatusCode != http.StatusOK || resp.ContentLength != 256*32 || len(body) != 0 {
			t.Errorf("HEAD: %s, Content-Length %d, %d bytes of body", resp.Status, resp.ContentLength, len(body))
		}
	})

	t.Run("entry bundles carry the exact entries", func(t *testing.T) {
		_, level0 := operator.mustGet("tile/0/000")
		_, bundle := operator.mustGet("tile/entries/000")
		entries := parseBundle(t, bundle)
		if len(entries) != 256 {
			t.Fatalf("full bundle of %d entries", len(entries))
		}
		for i, e := range entries {
			if !bytes.Equal(e, all[i].GetEntry()) {
				t.Fatalf("bundle entry %d differs from GetEntries' entry", i)
			}
			if h := translog.LeafHash(e); !bytes.Equal(h[:], level0[32*i:32*i+32]) {
				t.Fatalf("bundle entry %d does not hash to the level-0 tile's hash", i)
			}
		}
	})

	t.Run("a restricted entry only to its sharing group", func(t *testing.T) {
		resp, body := operator.get(bundleOf(redAt))
		msg := string(body)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(msg, fmt.Sprintf("entry %d ", redAt)) ||
			!strings.Contains(msg, "LogService.GetEntries") || !strings.Contains(msg, `"videoshare"`) {
			t.Fatalf("outsider: %s: %s", resp.Status, msg)
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("refusal Cache-Control %q, want no-store", got)
		}
		_, bundle := member.mustGet(bundleOf(redAt))
		entries := parseBundle(t, bundle)
		if got := entries[len(entries)-1]; !bytes.Equal(got, all[redAt].GetEntry()) {
			t.Fatal("the member's bundle does not end with the red notice's entry")
		}
		_, level0 := member.mustGet(c2spPath("0", int64(redAt/256), int(redAt%256)+1))
		if h := translog.LeafHash(entries[len(entries)-1]); !bytes.Equal(h[:], level0[len(level0)-32:]) {
			t.Fatal("the red notice's entry does not hash to the level-0 tile's hash")
		}
	})

	t.Run("an oversized entry is refused with the reason", func(t *testing.T) {
		resp, body := member.get(bundleOf(bigAt))
		msg := string(body)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(msg, fmt.Sprintf("entry %d ", bigAt)) ||
			!strings.Contains(msg, "65535 bytes") || !strings.Contains(msg, "LogService.GetEntries") {
			t.Fatalf("%s: %s", resp.Status, msg)
		}
	})

	t.Run("not found and bad requests", func(t *testing.T) {
		beyond := c2spPath("0", cp.Size/256+1, 256)
		cases := []struct {
			method, path string
			status       int
			want         string
		}{
			{"GET", beyond, http.StatusNotFound, "beyond the log"},
			{"GET", c2spPath("0", cp.Size/256, int(cp.Size%256)+1), http.StatusNotFound, "beyond the log"},
			{"GET", "tile/entries/" + beyond[len("tile/0/"):], http.StatusNotFound, "beyond the log"},
			{"GET", "tile/2/000", http.StatusNotFound, "beyond the log"},
			{"GET", "tile/0/x001/000", http.StatusNotFound, "beyond the log"},
			{"GET", "tile/63/x999/x999/x999/x999/x999/999", http.StatusNotFound, "beyond the log"},
			{"GET", "tile/0/x999/x999/x999/x999/x999/x999/999", http.StatusBadRequest, "malformed"}, // past int64
			{"GET", "tile/0/0", http.StatusBadRequest, "3-digit groups"},
			{"GET", "tile/0/1234", http.StatusBadRequest, "x001/x234/067"},
			{"GET", "tile/0/x000/001", http.StatusBadRequest, "malformed"},
			{"GET", "tile/00/000", http.StatusBadRequest, "malformed"},
			{"GET", "tile/64/000", http.StatusBadRequest, "<L> from 0 to 63"},
			{"GET", "tile/0/000.p/256", http.StatusBadRequest, "<W> from 1 to 255"},
			{"GET", "tile/0/000.p/0", http.StatusBadRequest, "malformed"},
			{"GET", "tile/data/000", http.StatusBadRequest, "tile/entries/<N>[.p/<W>]"},
			{"GET", "tile/entries/000.p/1/extra", http.StatusBadRequest, "malformed"},
			{"GET", "", http.StatusBadRequest, "checkpoint, tile/<L>/<N>[.p/<W>]"},
			{"GET", "checkpoint/", http.StatusBadRequest, "malformed"},
			{"POST", "checkpoint", http.StatusMethodNotAllowed, "GET or HEAD"},
		}
		for _, tc := range cases {
			t.Run(tc.method+" "+tc.path, func(t *testing.T) {
				resp, body := operator.do(tc.method, tc.path)
				if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
					t.Fatalf("%s: %s; want %d and %q", resp.Status, body, tc.status, tc.want)
				}
			})
		}
	})

	t.Run("an unregistered partner is refused", func(t *testing.T) {
		// A certificate the CA issued to a partner the registry does not know.
		if _, err := pki.Init(pki.Options{Dir: n.PKI.Dir, TrustDomain: identity.DefaultTrustDomain, PartnerIDs: []string{"stranger"}}); err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"checkpoint", "tile/0/000", "tile/entries/000"} {
			resp, body := newTileClient(t, n, "stranger").get(path)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "not in the registry") {
				t.Fatalf("%s: %s: %s", path, resp.Status, body)
			}
		}
	})

	t.Run("no client certificate fails the handshake", func(t *testing.T) {
		conf := tlsConfigWithoutCert(t, n)
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}}
		if resp, err := hc.Get("https://" + n.HTTPAddr() + "/log/checkpoint"); err == nil {
			resp.Body.Close()
			t.Fatalf("served without a client certificate: %s", resp.Status)
		}
		// How the HTTP client words it depends on when the alert arrives; the alert itself, read
		// right after the handshake, is the proof that TLS refused the connection.
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", n.HTTPAddr(), conf)
		if err == nil {
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = conn.Read(make([]byte, 1))
		}
		if err == nil || !strings.Contains(err.Error(), "tls: certificate required") {
			t.Fatalf("got %v, want the server's certificate-required alert", err)
		}
	})
}

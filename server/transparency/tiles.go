package transparency

// The log's C2SP tlog-tiles read paths (https://c2sp.org/tlog-tiles), so that standard tile
// clients and witnesses can follow and verify the log without Concord's API:
//
//	checkpoint                    the latest signed checkpoint, with its cosignatures
//	tile/<L>/<N>[.p/<W>]          hash tiles of height 8 (256 hashes), built from the tree
//	tile/entries/<N>[.p/<W>]      entry bundles: each entry prefixed by its big-endian uint16 length
//
// Concord deviates from the spec in two ways, both for entry bundles only; hash tiles and the
// checkpoint are served exactly as specified, so every client can verify the whole tree:
//   - An entry may be longer than the 65 535 bytes a 2-byte length prefix can carry (a notice of
//     10 000 hashes is about 400 KB). A bundle holding such an entry is refused (422), naming it.
//   - An entry concerning a notice the caller may not see (TLP, sharing group) is never served.
//     A bundle holding one is refused (403), naming it.
//
// Either refusal tells the caller to read those entries with LogService.GetEntries, which gives
// every entry the caller may see and the leaf hash of every other one.

import (
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/server/fault"
	"concord/server/signed"

	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc/codes"
)

const (
	// tileHeight is fixed by C2SP: a full tile holds 256 hashes, a full bundle 256 entries.
	tileHeight = 8
	tileWidth  = 1 << tileHeight
	// maxLevel is the highest level a tile path may name.
	maxLevel = 63
	// maxBundledEntry is the longest entry a bundle can carry after its 2-byte length.
	maxBundledEntry = 1<<16 - 1

	cacheImmutable = "max-age=31536000, immutable"
	// The checkpoint changes with every entry. A partial tile's bytes do not, but wider ones
	// supersede it and the spec lets a log stop serving it: caches keep neither.
	cacheShortLived = "no-cache"
)

// tilePathForms names the paths the handler serves, for the callers who get one wrong.
const tilePathForms = "checkpoint, tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>] (C2SP tlog-tiles): " +
	"<L> from 0 to 63, <N> in 3-digit groups of which all but the last start with x (tile 1234067 is x001/x234/067), " +
	"and .p/<W>, <W> from 1 to 255, only for a partial tile"

// TilesHandler serves the log's C2SP tlog-tiles read paths relative to where it is mounted (the
// HTTPS port strips its /log prefix). The caller must be on the request's context
// (authz.WithCaller), as the port puts it once the certificate and the registry have vouched for
// it; entry bundles depend on who asks. Internal errors are logged to logger.
func (s *Service) TilesHandler(logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	return &tiles{s: s, logger: logger}
}

type tiles struct {
	s      *Service
	logger *slog.Logger
}

func (h *tiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.fail(w, r, refusal(http.StatusMethodNotAllowed, "the log's tiles are read with GET or HEAD, not %s", r.Method))
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/")
	var err error
	if path == "checkpoint" {
		err = h.checkpoint(w, r)
	} else if t, perr := parseTilePath(path); perr != nil {
		err = perr
	} else if t.L == -1 {
		err = h.entryBundle(w, r, t)
	} else {
		err = h.hashTile(w, t)
	}
	if err != nil {
		h.fail(w, r, err)
	}
}

// checkpoint serves what GetCheckpoint returns: the latest signed checkpoint with the
// witnesses' cosignatures.
func (h *tiles) checkpoint(w http.ResponseWriter, r *http.Request) error {
	resp, err := h.s.GetCheckpoint(r.Context(), &concordv1.GetCheckpointRequest{})
	if err != nil {
		return err
	}
	note := resp.GetCheckpoint().GetNote()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", cacheShortLived)
	w.Header().Set("Content-Length", strconv.Itoa(len(note)))
	_, _ = io.WriteString(w, note)
	return nil
}

// hashTile serves a tile of the tree's hashes: the same for every caller, hence public.
func (h *tiles) hashTile(w http.ResponseWriter, t tlog.Tile) error {
	tree := h.s.tree()
	if err := inTree(t, tree.Size()); err != nil {
		return err
	}
	data, err := tlog.ReadTileData(t, tree)
	if err != nil {
		return fmt.Errorf("read %s: %w", tilePath(t), err)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", cacheControl(t, "public"))
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data)
	return nil
}

// entryBundle serves entries [N*256, N*256+W) if the caller may see every one of them and each
// fits a bundle; otherwise it says which do not and where to read them.
func (h *tiles) entryBundle(w http.ResponseWriter, r *http.Request, t tlog.Tile) error {
	c, err := signed.Caller(r.Context())
	if err != nil {
		return err
	}
	tree := h.s.tree()
	if err := inTree(t, tree.Size()); err != nil {
		return err
	}
	first := uint64(t.N) * tileWidth
	end := first + uint64(t.W)
	st := h.s.state()
	visible := visibility(c.PartnerID)
	rows := make([]*statev1.LogRow, 0, t.W)
	var hidden, oversized []uint64
	err = st.LogRows(first, func(row *statev1.LogRow) bool {
		if row.GetIndex() >= end {
			return false
		}
		rows = append(rows, row)
		if visible(st, row).GetLeafHash() != nil {
			hidden = append(hidden, row.GetIndex())
		} else if len(row.GetEntry()) > maxBundledEntry {
			oversized = append(oversized, row.GetIndex())
		}
		return true
	})
	if err != nil {
		return err
	}
	if len(rows) != t.W {
		// The tree is ahead of this store: a restore is replacing both.
		return fault.Unavailable("the log is being restored from a snapshot: retry in a moment")
	}
	getEntries := fmt.Sprintf("read entries %d to %d with LogService.GetEntries (start=%d, end=%d), which returns "+
		"every entry you may see and the leaf hash of every other one", first, end-1, first, end)
	if len(hidden) > 0 {
		return refusal(http.StatusForbidden, "%s holds %s concerning a notice that partner %q may not see (TLP or sharing group); "+
			"a bundle is never served in part: %s", tilePath(t), entryList(hidden), c.PartnerID, getEntries)
	}
	if len(oversized) > 0 {
		// 422, not 404: the bundle exists and will always exist, but cannot be written in the
		// spec's format; tile clients take a 404 for "not published yet" or "partial tile
		// gone, fetch the full one", and would poll for it forever.
		return refusal(http.StatusUnprocessableEntity, "%s holds %s longer than the %d bytes a tlog-tiles bundle can "+
			"carry (2-byte length prefix): %s", tilePath(t), entryList(oversized), maxBundledEntry, getEntries)
	}

	w.Header().Set("Content-Type", "application/octet-stream")
	// Who may read a bundle depends on the caller: no shared cache may keep it.
	w.Header().Set("Cache-Control", cacheControl(t, "private"))
	var out io.Writer = w
	if r.Method == http.MethodGet && acceptsGzip(r) {
		// The spec asks for compressed bundles. Every entry in the body is one the caller may
		// read, so compression reveals nothing it could not read anyway.
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Add("Vary", "Accept-Encoding")
		gz := gzip.NewWriter(w)
		defer gz.Close()
		out = gz
	} else {
		n := 0
		for _, row := range rows {
			n += 2 + len(row.GetEntry())
		}
		w.Header().Set("Content-Length", strconv.Itoa(n))
	}
	var prefix [2]byte
	for _, row := range rows {
		binary.BigEndian.PutUint16(prefix[:], uint16(len(row.GetEntry())))
		if _, err := out.Write(prefix[:]); err != nil {
			return nil // the caller went away
		}
		if _, err := out.Write(row.GetEntry()); err != nil {
			return nil
		}
	}
	return nil
}

// parseTilePath reads tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]. A C2SP tile is a tlog
// tile of height 8 with the height left out of its path, and "entries" for tlog's "data" level;
// tlog's parser refuses every non-canonical form (leading zeros, .p/256, N not in x groups).
func parseTilePath(path string) (tlog.Tile, error) {
	bad := refusal(http.StatusBadRequest, "malformed path %q: the log serves %s", path, tilePathForms)
	rest, ok := strings.CutPrefix(path, "tile/")
	if !ok {
		return tlog.Tile{}, bad
	}
	level, index, _ := strings.Cut(rest, "/")
	prefix := "tile/" + strconv.Itoa(tileHeight) + "/"
	switch level {
	case "entries":
		rest = "data/" + index
	case "data":
		return tlog.Tile{}, bad // tlog's name for entries, not C2SP's
	}
	t, err := tlog.ParseTilePath(prefix + rest)
	if err != nil || t.L > maxLevel {
		return tlog.Tile{}, bad
	}
	return t, nil
}

// tilePath is t's path in C2SP's form.
func tilePath(t tlog.Tile) string {
	p := strings.TrimPrefix(t.Path(), "tile/"+strconv.Itoa(tileHeight)+"/")
	if rest, ok := strings.CutPrefix(p, "data/"); ok {
		return "tile/entries/" + rest
	}
	return "tile/" + p
}

// inTree refuses a tile whose hashes, or entries, are not all in a tree of size leaves. The last
// hash of tile t at level L covers the leaves up to (N*256 + W) * 256^L.
func inTree(t tlog.Tile, size int64) error {
	level := max(t.L, 0)
	perHash := uint(tileHeight * level)
	var have int64 // hashes at the tile's level
	if perHash < 63 {
		have = size >> perHash
	}
	if int64(t.W) <= have && t.N <= (have-int64(t.W))/tileWidth {
		return nil
	}
	return refusal(http.StatusNotFound, "%s is beyond the log, which has %d entries: fetch the checkpoint first, "+
		"then only the tiles its size requires", tilePath(t), size)
}

// cacheControl lets caches keep a full tile for good: its content never changes.
func cacheControl(t tlog.Tile, scope string) string {
	if t.W == tileWidth {
		return scope + ", " + cacheImmutable
	}
	return scope + ", " + cacheShortLived
}

// entryList names entries for a message: "entry 7" or "entries 7, 9 and 12" (the first few).
func entryList(indexes []uint64) string {
	const shown = 8
	if len(indexes) == 1 {
		return fmt.Sprintf("entry %d", indexes[0])
	}
	names := make([]string, 0, min(len(indexes), shown))
	for _, i := range indexes[:min(len(indexes), shown)] {
		names = append(names, strconv.FormatUint(i, 10))
	}
	if len(indexes) > shown {
		return fmt.Sprintf("entries %s and %d more", strings.Join(names, ", "), len(indexes)-shown)
	}
	return fmt.Sprintf("entries %s and %s", strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
}

// acceptsGzip reports whether the request's Accept-Encoding lists gzip, other than with q=0.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			q, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q=")
			if !ok {
				return true
			}
			f, err := strconv.ParseFloat(q, 64)
			return err == nil && f > 0
		}
	}
	return false
}

// tileError is a refusal with its HTTP status and a message for the caller.
type tileError struct {
	status int
	msg    string
}

func (e *tileError) Error() string { return e.msg }

func refusal(status int, format string, args ...any) error {
	return &tileError{status: status, msg: fmt.Sprintf(format, args...)}
}

// fail writes err as a plain-text refusal. Errors that are neither refusals nor faults are the
// hub's: the caller gets 500, the log gets the detail.
func (h *tiles) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := http.StatusInternalServerError, "internal error: the hub logged the details"
	var te *tileError
	var f *fault.Error
	switch {
	case errors.As(err, &te):
		status, msg = te.status, te.msg
	case errors.As(err, &f) && httpStatus(f.Code) != 0:
		status, msg = httpStatus(f.Code), f.Msg
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status, msg = http.StatusServiceUnavailable, "request canceled or past its deadline"
	default:
		h.logger.ErrorContext(r.Context(), "internal error", "path", r.URL.Path, "err", err)
	}
	// A refusal may not last (the log grows, a restore ends): no cache may keep it.
	w.Header().Set("Cache-Control", "no-store")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	http.Error(w, msg, status)
}

// httpStatus is the HTTP status of the faults the handler can meet, or 0.
func httpStatus(code codes.Code) int {
	switch code {
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	}
	return 0
}

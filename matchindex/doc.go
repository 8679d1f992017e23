// Package matchindex is the match index shared by the server and the client's local
// mirror: it holds the hashes of removal notices and answers which stored hashes match a
// query hash — by equality for SHA256, MD5 and URL_SHA256, within a Hamming radius for PDQ,
// and by vPDQ's frame-share rule for PDQ_VIDEO. It is derived state: the server rebuilds it
// from its notices (Build) after a snapshot restore or at start-up, and keeps it current
// with Add and Remove as notices are committed and withdrawn.
//
// # What a hit is
//
// Each stored hash belongs to a notice (its id) at a position (its index in the notice's
// hash list). A hit reports both, and the distance for PDQ; the same value in several
// notices, or twice in one, gives one hit per (notice, position). Notice ids are interned
// to dense uint32 handles, so an entry costs its value, a 2-byte position, and its share of
// a per-notice run; the id string is stored once.
//
// # PDQ: multi-index hashing, laid out for the cache
//
// Finding every stored 256-bit hash within distance r ≤ 31 of a query, exactly, uses the
// pigeonhole principle: cut the hash into m slots; a hash within r agrees with the query
// within tₛ bits on some slot s whenever Σtₛ ≥ r+1−m. Each slot has its own copy of every
// stored hash, sorted by the slot's bits (a counting sort) with a directory of bucket
// starts, so the candidates of a probe are contiguous. Each entry carries 96 further bits
// of the hash inline, so nearly every non-match (all but ≈4·10⁻⁴) is rejected by two
// popcounts on memory already being read, and only survivors are checked against the
// master array. A match is reported only by the first slot that can find it, so there is
// no set of seen ids.
//
// At 10 M hashes the cost of a query is the ≈6 000 cache lines it touches, not the
// instructions: on the 2-core machine of BENCHMARKS.md a random line costs ≈14 ns even with
// independent loads, and the reference implementation's tree set, with a random access per
// candidate, took ≈60 ms. So (1) the geometry — how many slots, how wide, and which slots
// flip one or two bits for a given radius — is chosen per table by a model of lines touched
// (13 slots of 19–20 bits at 10 M, 16 of 16 bits at 1 M, 32 of 8 bits for a few thousand,
// a plain scan below 1 024), and (2) a query runs in passes whose cache misses are
// independent (directory entries, then bucket lines, then the scan in cache), which the
// CPU overlaps. Result: ≈120 µs at 10 M uniform hashes against ≈15 ms for a scan, at ≈250
// bytes a hash.
//
// # Data that is not uniform
//
// Real PDQ collections are not uniform: bits are biased (some set for nearly every image),
// and near-duplicates crowd together. A table measures, on a sample, how much each bit tells
// apart (its collision entropy) and, where bits are biased, deals them out so that every slot
// carries the same information, then costs each geometry by its slots' effective widths rather
// than their widths (layout.go). Where no geometry reads less than a scan (most bits nearly
// constant, as in the harsh-skew corpus of package corpus), the table has no slots and keeps its
// most telling bits first. A query whose probes would still read more than a sixteenth of a
// table (a family of near-duplicates crowding its buckets) is answered by a scan, which is just
// as exact. Scans read the front half of every hash, four at a time, and the back half only of
// the rare hashes within the radius on the front: measured, 2.2–2.4× faster than reading whole
// hashes one by one.
//
// Families of near-duplicates (the same picture re-encoded, resized, cropped; the frames of one
// scene) are set apart before the slots are laid out (family.go): each is stored as a pivot, a
// radius and its members' rows, in no slot. A query compares the pivots and scans the members of
// a family only when its pivot is within the radius plus the family's: by the triangle
// inequality nothing is missed. A member costs 36 bytes instead of ≈250, and a family one
// comparison a query instead of crowding a bucket in every slot.
//
// Look-alike pictures spread wider than a family (one template in many colours and captions)
// still crowd buckets: the rows that would fall in a bucket of over 64 times the mean size, in
// any slot, are set apart in a table of their own over the same arrays, with its own bit layout,
// families and slots, searched beside the others (splitCrowded, in pdqbuild.go). A query near
// them reads, or at worst scans, that table, not the whole one. A scan near a crowd reads whole
// hashes in the blocks where most fronts are within the radius.
//
// # Exact kinds
//
// Values are sorted with a directory on their first bits: cryptographic hashes are uniform,
// so a lookup is two cache misses and ≈40 bytes a SHA-256 entry, position included, against
// 67–80 bytes for a Go map[[32]byte]uint32 (measured at 10 M and 1 M). The three kinds have separate tables: a SHA-256 of a file
// never matches the same bytes given as a URL hash.
//
// # Video
//
// PDQ_VIDEO values are lists of frame hashes; their unique frames go into a PDQ table of
// their own, apart from image hashes. See MatchVideo for the rule and what the caller does
// about frame quality.
//
// # Segments, views and concurrency
//
// The index is a list of immutable segments, each holding whole notices, plus a set of
// removed notice handles; together they form a view, published through an atomic pointer.
// A query loads the pointer once and reads only that view, so it never waits and always
// sees every notice wholly present or wholly absent. Add builds a new segment for its
// notices outside any lock, then publishes a view with it appended; Remove publishes a view
// whose removed set holds the notice (copy-on-write, 4 KiB). One mutex serialises writers
// and is held only for that bookkeeping. Background merges keep the segments few and drop
// removed notices, building outside the lock too (policy and costs: Options.MergeFactor).
//
// The caller (the state machine) is the single writer in practice; concurrent writers are
// safe but gain nothing.
package matchindex

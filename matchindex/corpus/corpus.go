// Package corpus draws synthetic PDQ hash collections for the match index's tests and
// benchmarks, from the models its issue measured: independent uniform hashes (the worst case
// for multi-index hashing's bucket sizes, the best for their balance), near-duplicate
// families, and skewed collections whose bits are biased and correlated as real PDQ hashes
// are.
//
// The skewed models follow what real collections show: a few tens of thousands of distinct
// images (centres), each stored many times with a few percent of its bits flipped (re-encodes,
// resizes, frames of one scene), and bits that are far from fair coins. Each bit i has its own
// probability pᵢ of being set, drawn once per model from a Beta(a, a) distribution: Beta(4,4)
// keeps most pᵢ within 0.2–0.8 (mild skew), Beta(0.5,0.5) pushes them to 0 or 1 (harsh skew:
// many bits nearly constant across the collection).
package corpus

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
)

// Model names a distribution.
type Model string

const (
	Uniform   Model = "uniform"   // independent random hashes
	Clustered Model = "clustered" // n/32 random centres, each hash 0–32 bits from its centre
	MildSkew  Model = "beta4"     // biased bits, Beta(4,4); 20 000 centres, ~3 % of bits flipped
	HarshSkew Model = "beta05"    // biased bits, Beta(0.5,0.5); 20 000 centres, ~3 % flipped
)

// Models lists every model, in the order benchmarks report them.
var Models = []Model{Uniform, Clustered, MildSkew, HarshSkew}

// Parse reads a model name.
func Parse(s string) (Model, error) {
	for _, m := range Models {
		if string(m) == s {
			return m, nil
		}
	}
	return "", fmt.Errorf("unknown distribution %q: want one of %v", s, Models)
}

// Centres is the number of distinct images of the skewed models.
const Centres = 20_000

// FlipRate is the share of bits a stored variant of a skewed model differs from its centre by
// (each bit flipped independently): ≈8 bits of 256.
const FlipRate = 0.03

// Gen draws the hashes of one collection. Two generators with the same model, seed and size
// draw the same hashes.
type Gen struct {
	model   Model
	rng     *rand.Rand
	p       [256]float64 // skewed models: the probability each bit is set
	centres [][4]uint64
	// A real list (FromFile): Next cycles through stored, Fresh through held.
	stored, held [][4]uint64
	next, fresh  int
}

// FromFile reads a real hash list: one PDQ hash a line, 64 hex digits, as the first field
// (ThreatExchange's and HMA's exports, pdq-photo-hasher's output; other fields and lines
// starting with # are ignored). The hash of every hundredth line is held out of the collection, as an
// upload that is not in it (Fresh); Next cycles through the rest in file order.
func FromFile(path string) (*Gen, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	g := &Gen{model: Model("file:" + path), rng: rand.New(rand.NewPCG(1, 1))}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.FieldsFunc(sc.Text(), func(r rune) bool { return r == ' ' || r == '\t' || r == ',' })
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		b, err := hex.DecodeString(fields[0])
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("%s:%d: %q is not a PDQ hash (64 hex digits)", path, line, fields[0])
		}
		var h [4]uint64
		for i := range h {
			h[i] = binary.BigEndian.Uint64(b[8*i:])
		}
		if line%100 == 0 {
			g.held = append(g.held, h)
		} else {
			g.stored = append(g.stored, h)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(g.stored) == 0 || len(g.held) == 0 {
		return nil, fmt.Errorf("%s: %d hashes; want at least 100", path, len(g.stored)+len(g.held))
	}
	return g, nil
}

// Again returns a generator of a real list from its start (sharing the list).
func (g *Gen) Again() *Gen {
	c := *g
	c.next, c.fresh = 0, 0
	return &c
}

// Len is how many hashes a real list stores (0 for a model: as many as asked).
func (g *Gen) Len() int { return len(g.stored) }

// New returns a generator of a collection of about n hashes (the clustered model sizes its
// centres by n).
func New(model Model, seed uint64, n int) *Gen {
	g := &Gen{model: model, rng: rand.New(rand.NewPCG(seed, 1))}
	switch model {
	case Clustered:
		g.centres = make([][4]uint64, max(n/32, 1))
		for i := range g.centres {
			g.centres[i] = g.Random()
		}
	case MildSkew, HarshSkew:
		a := 4.0
		if model == HarshSkew {
			a = 0.5
		}
		// The bit biases are the model's, not the collection's: the same for every seed, so
		// that queries drawn with another seed share them, as real uploads share PDQ's.
		biasRng := rand.New(rand.NewPCG(uint64(len(model)), 0xb1a5))
		for i := range g.p {
			g.p[i] = beta(biasRng, a, a)
		}
		g.centres = make([][4]uint64, Centres)
		for i := range g.centres {
			g.centres[i] = g.Fresh()
		}
	}
	return g
}

// Random is a uniform random hash.
func (g *Gen) Random() [4]uint64 {
	return [4]uint64{g.rng.Uint64(), g.rng.Uint64(), g.rng.Uint64(), g.rng.Uint64()}
}

// Fresh is a hash of an image that is not in the collection, drawn as the collection's own
// are: uniform for the uniform and clustered models, from the bit biases for the skewed
// ones. It is what most uploads a platform checks look like.
func (g *Gen) Fresh() [4]uint64 {
	if g.held != nil {
		h := g.held[g.fresh%len(g.held)]
		g.fresh++
		return h
	}
	if g.model != MildSkew && g.model != HarshSkew {
		return g.Random()
	}
	var h [4]uint64
	for i, p := range g.p {
		if g.rng.Float64() < p {
			h[i/64] |= 1 << (i % 64)
		}
	}
	return h
}

// Next is the collection's next hash.
func (g *Gen) Next() [4]uint64 {
	if g.stored != nil {
		h := g.stored[g.next%len(g.stored)]
		g.next++
		return h
	}
	switch g.model {
	case Clustered:
		return Flip(g.rng, g.centres[g.rng.IntN(len(g.centres))], g.rng.IntN(33))
	case MildSkew, HarshSkew:
		h := g.centres[g.rng.IntN(len(g.centres))]
		// Each bit flips with probability FlipRate: the gaps between flipped bits are
		// geometric, so a hash costs a few draws rather than 256.
		for i := g.gap(); i < 256; i += 1 + g.gap() {
			h[i/64] ^= 1 << (i % 64)
		}
		return h
	}
	return g.Random()
}

// gap draws how many bits pass before the next flipped one.
func (g *Gen) gap() int {
	return int(math.Log(1-g.rng.Float64()) / math.Log(1-FlipRate))
}

// Flip returns h with d distinct random bits flipped.
func Flip(rng *rand.Rand, h [4]uint64, d int) [4]uint64 {
	var done [4]uint64
	for d > 0 {
		b := rng.IntN(256)
		if done[b/64]&(1<<(b%64)) != 0 {
			continue
		}
		done[b/64] |= 1 << (b % 64)
		h[b/64] ^= 1 << (b % 64)
		d--
	}
	return h
}

// beta draws from Beta(a, b) as X/(X+Y) with X ~ Gamma(a), Y ~ Gamma(b).
func beta(rng *rand.Rand, a, b float64) float64 {
	x, y := gamma(rng, a), gamma(rng, b)
	return x / (x + y)
}

// gamma draws from Gamma(a, 1) (Marsaglia and Tsang; a < 1 by Gamma(a+1)·U^(1/a)).
func gamma(rng *rand.Rand, a float64) float64 {
	if a < 1 {
		return gamma(rng, a+1) * math.Pow(rng.Float64(), 1/a)
	}
	d := a - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := rng.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := rng.Float64()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}

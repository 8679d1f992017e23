package pdq

import (
	"math"
	"math/big"
	"testing"
)

// bigCos is cos(x) for a float64 x, to prec bits, by its Taylor series (x ≤ 50 here, so the
// terms peak near 10²⁰ and 400 bits leave ample precision).
func bigCos(x float64, prec uint) *big.Float {
	bx := new(big.Float).SetPrec(prec).SetFloat64(x)
	x2 := new(big.Float).SetPrec(prec).Mul(bx, bx)
	sum := new(big.Float).SetPrec(prec).SetInt64(1)
	term := new(big.Float).SetPrec(prec).SetInt64(1)
	eps := new(big.Float).SetPrec(prec).SetMantExp(big.NewFloat(1), -int(prec))
	for n := int64(1); ; n++ {
		term.Mul(term, x2)
		term.Quo(term, new(big.Float).SetPrec(prec).SetInt64((2*n-1)*(2*n)))
		term.Neg(term)
		sum.Add(sum, term)
		if n > 10 && new(big.Float).Abs(term).Cmp(eps) < 0 {
			return sum
		}
	}
}

// TestDCTMatrix checks the table against a correctly rounded cosine: Go's math.Cos is not
// guaranteed to be correctly rounded, and the C++ reference's is (glibc); a one-ulp difference
// could change a float32 entry and with it hash bits.
func TestDCTMatrix(t *testing.T) {
	t.Parallel()
	pi, cols := 3.14159265358979323846, 64.0
	scale := float64(float32(math.Sqrt(2.0 / cols)))
	step := pi / 2.0 / cols
	for i := range 16 {
		for j := range 64 {
			arg := step * float64(i+1) * float64(2*j+1)
			c, _ := bigCos(arg, 400).Float64() // rounded to nearest
			want := float32(scale * c)
			if got := dctMatrix[i*64+j]; got != want {
				t.Errorf("D[%d][%d] = %v, want %v", i, j, got, want)
			}
		}
	}
}

// TestDCTOrthonormalRows: a sanity check on the basis itself, independent of rounding.
func TestDCTOrthonormalRows(t *testing.T) {
	t.Parallel()
	for a := range 16 {
		for b := range 16 {
			var dot float64
			for k := range 64 {
				dot += float64(dctMatrix[a*64+k]) * float64(dctMatrix[b*64+k])
			}
			want := 0.0
			if a == b {
				want = 1
			}
			if math.Abs(dot-want) > 1e-6 {
				t.Errorf("row %d · row %d = %v, want %v", a, b, dot, want)
			}
		}
	}
}

func TestMedian256(t *testing.T) {
	t.Parallel()
	var v, scratch [256]float32
	for i := range v {
		v[i] = float32((i * 37) % 256) // a permutation of 0..255
	}
	if got := median256(&v, &scratch); got != 127 {
		t.Errorf("median = %v, want 127, the 128th smallest", got)
	}
	// Half the bits are set, minus ties at the median.
	h := bitsOf(&v, &scratch)
	n := 0
	for _, b := range h {
		for ; b != 0; b &= b - 1 {
			n++
		}
	}
	if n != 128 {
		t.Errorf("%d bits set, want 128", n)
	}
}

func TestDihedralOfIsAGroupAction(t *testing.T) {
	t.Parallel()
	var a, once, twice [256]float32
	for i := range a {
		a[i] = float32(i + 1)
	}
	// Applying a reflection twice, or rotate180 twice, gives the original back.
	for _, tr := range []Transform{Original, Rotate180, FlipX, FlipY, FlipPlus1, FlipMinus1} {
		dihedralOf(tr, &a, &once)
		dihedralOf(tr, &once, &twice)
		if twice != a {
			t.Errorf("%v applied twice is not the identity", tr)
		}
	}
	// rot90 then rot270 is the identity.
	dihedralOf(Rotate90, &a, &once)
	dihedralOf(Rotate270, &once, &twice)
	if twice != a {
		t.Error("rot270 ∘ rot90 is not the identity")
	}
}

package pdq

// Transformed returns the hash h would be, to within a few bits, if the picture it was computed
// from were transformed by t: the hash-level counterpart of HashDihedral, for when only the
// hash is at hand (a platform sends hashes, not pictures). A rotation or reflection of the
// picture transposes the 16×16 DCT block and/or negates its odd-frequency rows or columns (see
// dihedralOf); a negated coefficient lands on the other side of the median, so its bit flips. It
// is not exact because the median of the transformed block moves a little; measured against the
// reference's dihedral hashes of the test images, the two differ by a few bits (TestTransformed).
//
// Transformed(Transformed(h, t), t.Inverse()) == h for every h and t.
func Transformed(h Hash, t Transform) Hash {
	if t == Original {
		return h
	}
	var out Hash
	for i := range 16 {
		for j := range 16 {
			k := 16*i + j
			bit := h[Size-1-k/8]>>(k%8)&1 == 1
			negate, transpose := t.moves(i, j)
			if bit != negate {
				if transpose {
					out.setBit(16*j + i)
				} else {
					out.setBit(k)
				}
			}
		}
	}
	return out
}

// Inverse is the transform that undoes t: rotations by 90° and 270° undo each other; the others
// undo themselves.
func (t Transform) Inverse() Transform {
	switch t {
	case Rotate90:
		return Rotate270
	case Rotate270:
		return Rotate90
	}
	return t
}

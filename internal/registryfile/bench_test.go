package registryfile

import (
	"testing"

	"concord/internal/pki"
)

// BenchmarkParseExample parses the example registry, key files included.
func BenchmarkParseExample(b *testing.B) {
	dir := b.TempDir()
	if _, err := pki.Init(pki.Options{Dir: dir, PartnerIDs: ExamplePartnerIDs()}); err != nil {
		b.Fatal(err)
	}
	data := Example()
	for b.Loop() {
		if _, err := Parse(data, dir); err != nil {
			b.Fatal(err)
		}
	}
}

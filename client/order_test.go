package client_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"

	"concord/client"
	concordv1 "concord/gen/concord/v1"
	"concord/server/servertest"
)

// TestConcurrentWritesReplay: statements are stamped before their raft round trip, so under
// concurrent writes (a large notice stamped first, a small one committed first) the hub must
// still log accepted times in log order, and a mirror must accept the log.
func TestConcurrentWritesReplay(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	for w, p := range []string{"fr-pharos", "de-bka", "fr-pharos", "de-bka"} {
		c := n.Client(t, p)
		basis := map[string]string{"fr-pharos": "fr.cp.421-2-5", "de-bka": "de.stgb.140"}[p]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				notice := &concordv1.Notice{LegalBasis: basis, Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION}}
				k := 1
				if (i+w)%2 == 0 {
					k = 3000 // long to check between its stamp and its commit
				}
				for j := range k {
					sum := sha256.Sum256([]byte(fmt.Sprint(p, w, i, j)))
					notice.Hashes = append(notice.Hashes, &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: sum[:]})
				}
				if _, err := c.SubmitNotice(ctx, notice); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	m, err := client.OpenMirror(t.TempDir(), logVerifier(t, n), "videoshare")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(ctx, n.Client(t, "videoshare"), nil); err != nil {
		t.Fatalf("a mirror refuses the log of concurrent writes: %v", err)
	}
	if m.Size() != 121 {
		t.Fatalf("mirror holds %d entries, want 121", m.Size())
	}
}

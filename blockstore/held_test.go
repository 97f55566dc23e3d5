package blockstore

import (
	"bytes"
	"os"
	"sync"
	"testing"
)

// TestHeldCounts: the store counts its blocks and bytes as they come and
// go (for /metrics, which must not walk the directories), and the counts
// agree with the disk after concurrent writes of one block, deletes, a
// quarantine and a reopen.
func TestHeldCounts(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(s *Store, what string) {
		t.Helper()
		list, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		var size int64
		for _, b := range list {
			size += b.Size
		}
		if n, b := s.Held(); n != int64(len(list)) || b != size {
			t.Fatalf("%s: Held() = %d blocks, %d bytes; the disk has %d, %d", what, n, b, len(list), size)
		}
	}
	var ids []ID
	for i := range 5 {
		data := bytes.Repeat([]byte{byte(i)}, 100*(i+1))
		id := Sum(data)
		ids = append(ids, id)
		// Eight writers of the same block: it is stored, and counted, once.
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Write(id, bytes.NewReader(data), int64(len(data))); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	check(s, "after writes")
	if err := s.Delete(ids[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ids[0]); err != nil {
		t.Fatal(err)
	}
	check(s, "after deletes")
	if err := os.WriteFile(s.path(ids[1]), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ids[1]); err == nil {
		t.Fatal("corrupt copy verified")
	}
	// The garbage had another size than the counted block: recount from
	// the disk by reopening, which is what the count must match.
	s2, err := OpenStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	check(s2, "after a quarantine and a reopen")
	if n, _ := s2.Held(); n != 3 {
		t.Fatalf("%d blocks held, want 3", n)
	}
}

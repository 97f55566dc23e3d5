package gossip

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// fill writes n records with keys prefix0…, values of size bytes.
func fill(t testing.TB, s *Store, prefix string, n, size int) {
	t.Helper()
	v := make([]byte, size)
	for i := range n {
		if _, err := s.Put(fmt.Sprintf("%s%06d", prefix, i), v); err != nil {
			t.Fatal(err)
		}
	}
}

// sameRecords fails unless a and b hold the same keys and versions.
func sameRecords(t testing.TB, a, b *Store) {
	t.Helper()
	as, bs := a.snapshot(), b.snapshot()
	if len(as) != len(bs) {
		t.Fatalf("%d records vs %d", len(as), len(bs))
	}
	for _, r := range as {
		o, ok := b.lookup(r.Key)
		if !ok || o.Version != r.Version || o.Deleted != r.Deleted {
			t.Fatalf("%s: %v vs %v", r.Key, r.Version, o.Version)
		}
	}
	if a.Root() != b.Root() {
		t.Fatal("same records, different digests")
	}
}

// TestAntiEntropyConverges: random writes and deletes on two stores, then
// one round: both hold the union, last writer wins, with equal digests;
// the next round moves nothing and costs the same small number of bytes.
func TestAntiEntropyConverges(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	clock := newFakeClock()
	a := newTestPeer(t, "a", "", clock, time.Hour)
	b := newTestPeer(t, "b", "", clock, time.Hour)
	for range 2000 {
		s := a.store
		if rng.IntN(2) == 0 {
			s = b.store
		}
		k := fmt.Sprintf("file/%d", rng.IntN(500))
		if rng.IntN(5) == 0 {
			mustDelete(t, s, k)
		} else {
			mustPut(t, s, k, fmt.Sprint(rng.Int()))
		}
		clock.Advance(time.Millisecond)
	}
	ra, rb, err := syncPair(a.store, b.store, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if ra.Equal || ra.Buckets == 0 {
		t.Fatalf("first round: %+v", ra)
	}
	sameRecords(t, a.store, b.store)
	ra, rb, err = syncPair(a.store, b.store, time.Time{}, time.Time{})
	if err != nil || !ra.Equal || !rb.Equal {
		t.Fatalf("second round not idle: %+v %+v %v", ra, rb, err)
	}
	idle := ra.BytesSent + ra.BytesReceived
	if idle > 64 {
		t.Fatalf("idle round moved %d bytes", idle)
	}
	// A single change moves one bucket.
	mustPut(t, a.store, "file/new", "x")
	ra, _, err = syncPair(b.store, a.store, time.Time{}, time.Time{})
	if err != nil || ra.Buckets != 1 || getValue(b.store, "file/new") != "x" {
		t.Fatalf("one change: %+v %v", ra, err)
	}
}

// TestTombstoneRule: a node away longer than the TTL (stale horizon) does
// not bring back records deleted meanwhile whose tombstones were
// collected: the fresh side refuses them and the stale side drops them.
// Records written recently (after the cutoff) still move both ways.
func TestTombstoneRule(t *testing.T) {
	clock := newFakeClock()
	ttl := time.Hour
	stale := newTestPeer(t, "stale", "", clock, ttl)
	fresh := newTestPeer(t, "fresh", "", clock, ttl)
	mustPut(t, stale.store, "file/gone", "old")
	mustPut(t, stale.store, "job/gone", "old")
	mustPut(t, stale.store, "file/kept", "old")
	pushPull(stale, fresh)
	awayAt := clock.Now()
	// stale goes away; fresh deletes two records and collects the tombstones.
	mustDelete(t, fresh.store, "file/gone")
	mustDelete(t, fresh.store, "job/gone")
	clock.Advance(2 * ttl)
	if n := fresh.store.expireTombstones(); n != 2 {
		t.Fatalf("expired %d tombstones, want 2", n)
	}
	mustPut(t, fresh.store, "file/new-on-fresh", "n")
	mustPut(t, stale.store, "file/new-on-stale", "n") // written after its return

	for _, dir := range []string{"stale initiates", "fresh initiates"} {
		t.Run(dir, func(t *testing.T) {
			s := newTestPeer(t, "s", "", clock, ttl)
			f := newTestPeer(t, "f", "", clock, ttl)
			if _, err := s.store.Merge(stale.store.snapshot()); err != nil {
				t.Fatal(err)
			}
			if _, err := f.store.Merge(fresh.store.snapshot()); err != nil {
				t.Fatal(err)
			}
			var rs, rf SyncResult
			var err error
			if dir == "stale initiates" {
				rs, rf, err = syncPair(s.store, f.store, awayAt, clock.Now())
			} else {
				rf, rs, err = syncPair(f.store, s.store, clock.Now(), awayAt)
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []*testPeer{s, f} {
				for _, k := range []string{"file/gone", "job/gone"} {
					if _, ok := p.store.lookup(k); ok {
						t.Errorf("%s: deleted %s came back", p.name, k)
					}
				}
				for _, k := range []string{"file/kept", "file/new-on-fresh", "file/new-on-stale"} {
					if getValue(p.store, k) == "<none>" {
						t.Errorf("%s lacks %s", p.name, k)
					}
				}
			}
			// The stale side sends before it learns what to purge only when
			// it initiates; served, it purges before it sends.
			wantRefused := 0
			if dir == "stale initiates" {
				wantRefused = 2
			}
			if rs.Purged != 2 || rf.Refused != wantRefused {
				t.Errorf("purged %d on the stale side, refused %d on the fresh side; want 2 and %d", rs.Purged, rf.Refused, wantRefused)
			}
			// Without the rule (both horizons fresh), the records would
			// have come back: the rule, not chance, keeps them out.
			s2 := newTestPeer(t, "s2", "", clock, ttl)
			f2 := newTestPeer(t, "f2", "", clock, ttl)
			s2.store.Merge(stale.store.snapshot())
			f2.store.Merge(fresh.store.snapshot())
			if _, _, err := syncPair(s2.store, f2.store, clock.Now(), clock.Now()); err != nil {
				t.Fatal(err)
			}
			if getValue(f2.store, "file/gone") != "old" {
				t.Fatal("control: a plain merge did not bring the record back")
			}
		})
	}
}

// TestSyncRejectsBadFrames: a peer that lies about frame sizes or sends
// garbage ends the round with an error; nothing is merged.
func TestSyncRejectsBadFrames(t *testing.T) {
	clock := newFakeClock()
	a := newTestPeer(t, "a", "", clock, time.Hour)
	for _, b := range [][]byte{
		{0xff, 0xff, 0xff, 0xff},               // 4 GiB frame
		{0, 0, 0, 3, 0xc1, 0xc1, 0xc1},         // garbage
		{0, 0, 0, 5, 0x81, 0xa1, 't', 0x09, 0}, // unknown kind
	} {
		c := newSyncConn(&rwPair{r: bytesReader(b)})
		if _, err := a.store.syncServe(c, time.Time{}); err == nil {
			t.Fatalf("frame %x accepted", b)
		}
	}
	if a.store.Len() != 0 {
		t.Fatal("bad frames changed the store")
	}
}

// BenchmarkIdleAntiEntropy measures a round between two stores that hold
// the same records, at 1,000 and at 100,000 records, and prints the ratio
// of the two: the cost of an idle round must not grow with the store. The
// bytes of a round are deterministic and must be equal at both sizes; the
// time ratio is printed (run with -count to take medians).
func BenchmarkIdleAntiEntropy(b *testing.B) {
	sizes := []int{1000, 100000}
	perRound := map[int]time.Duration{}
	bytesPerRound := map[int]int64{}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			clock := newFakeClock()
			x := newTestPeer(b, "x", "", clock, time.Hour)
			y := newTestPeer(b, "y", "", clock, time.Hour)
			fill(b, x.store, "file/", n, 100)
			if _, err := y.store.Merge(x.store.snapshot()); err != nil {
				b.Fatal(err)
			}
			runtime.GC() // the fill's garbage is not the round's
			b.ReportAllocs()
			b.ResetTimer()
			var moved int64
			for range b.N {
				ra, _, err := syncPair(x.store, y.store, time.Time{}, time.Time{})
				if err != nil || !ra.Equal {
					b.Fatalf("idle round: %+v %v", ra, err)
				}
				moved = ra.BytesSent + ra.BytesReceived
			}
			b.ReportMetric(float64(moved), "bytes/round")
			perRound[n] = b.Elapsed() / time.Duration(b.N)
			bytesPerRound[n] = moved
		})
	}
	small, large := perRound[sizes[0]], perRound[sizes[1]]
	if small > 0 && large > 0 {
		ratio := float64(large) / float64(small)
		// Printed, not logged: the ratio is the benchmark's result.
		fmt.Printf("idle anti-entropy round: %v at %d records, %v at %d records: ratio %.2f (bytes/round %d vs %d)\n",
			small, sizes[0], large, sizes[1], ratio, bytesPerRound[sizes[0]], bytesPerRound[sizes[1]])
		if bytesPerRound[sizes[0]] != bytesPerRound[sizes[1]] {
			b.Errorf("an idle round moves %d bytes at %d records but %d at %d", bytesPerRound[sizes[0]], sizes[0], bytesPerRound[sizes[1]], sizes[1])
		}
	}
}

// TestJoinLargeStore: a new node joins a member whose store is larger than
// memberlist's push/pull limit (20 MB) and gets all of it by anti-entropy.
func TestJoinLargeStore(t *testing.T) {
	nodes := startCluster(t, 1, nil)
	const n, size = 400, MaxValueLen - 1 // 400 × 64 KiB ≈ 26 MB
	fill(t, nodes[0].Records(), "job/", n, size)
	var total int
	for _, r := range nodes[0].Records().Scan("") {
		total += len(r.Value)
	}
	if total <= 20<<20 {
		t.Fatalf("store of %d bytes is not above memberlist's 20 MB limit", total)
	}
	start := time.Now()
	joiner := startNode(t, testConfig(t, "joiner"))
	joinOK(t, joiner, nodes[0].Addr())
	eventually(t, 60*time.Second, func() bool { return joiner.Records().Len() == n && joiner.Synced() },
		"the joiner holds %d of %d records", joiner.Records().Len(), n)
	sameRecords(t, nodes[0].Records(), joiner.Records())
	t.Logf("joined and synced %d MB in %v; %d bytes moved", total>>20, time.Since(start).Round(time.Millisecond), joiner.SyncStats().Bytes)
}

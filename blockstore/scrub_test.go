package blockstore

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
)

// TestScrubOrder: the scenarios of what a scrub round verifies, in order.
func TestScrubOrder(t *testing.T) {
	now := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	id := func(n byte) ID { return ID{n} }
	blk := func(n byte, stored time.Duration) BlockInfo {
		return BlockInfo{ID: id(n), Size: int64(n) << 10, ModTime: ago(stored)}
	}
	for _, tc := range []struct {
		name     string
		blocks   []BlockInfo
		verified map[ID]time.Time
		expect   []byte
	}{
		{name: "nothing stored", expect: nil},
		{name: "never verified: oldest stored first",
			blocks: []BlockInfo{blk(1, time.Hour), blk(2, 3*time.Hour), blk(3, 2*time.Hour)},
			expect: []byte{2, 3, 1}},
		{name: "verified longest ago first",
			blocks:   []BlockInfo{blk(1, time.Hour), blk(2, time.Hour), blk(3, time.Hour)},
			verified: map[ID]time.Time{id(1): ago(time.Minute), id(2): ago(3 * time.Minute), id(3): ago(2 * time.Minute)},
			expect:   []byte{2, 3, 1}},
		{name: "never verified before verified, whatever their age",
			blocks:   []BlockInfo{blk(1, 5*time.Hour), blk(2, 2*time.Minute)},
			verified: map[ID]time.Time{id(1): ago(24 * time.Hour)},
			expect:   []byte{2, 1}},
		{name: "blocks being written or just stored are skipped",
			blocks: []BlockInfo{blk(1, time.Hour), blk(2, 59*time.Second), blk(3, 0), blk(4, time.Minute)},
			expect: []byte{1, 4}},
		{name: "a block stored again after its check is skipped until it settles",
			blocks:   []BlockInfo{blk(1, 10*time.Second), blk(2, time.Hour)},
			verified: map[ID]time.Time{id(1): ago(time.Hour), id(2): ago(time.Minute)},
			expect:   []byte{2}},
		{name: "ties go by ID",
			blocks: []BlockInfo{blk(3, time.Hour), blk(1, time.Hour), blk(2, time.Hour)},
			expect: []byte{1, 2, 3}},
		{name: "verified at the same time: oldest stored first, then ID",
			blocks:   []BlockInfo{blk(3, time.Hour), blk(1, time.Hour), blk(2, 2*time.Hour)},
			verified: map[ID]time.Time{id(1): ago(time.Minute), id(2): ago(time.Minute), id(3): ago(time.Minute)},
			expect:   []byte{2, 1, 3}},
		{name: "a verified entry of a block no longer listed changes nothing",
			blocks:   []BlockInfo{blk(1, time.Hour)},
			verified: map[ID]time.Time{id(9): ago(time.Hour)},
			expect:   []byte{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.blocks)
			got := scrubOrder(in, tc.verified, now, time.Minute)
			var ids []byte
			for _, b := range got {
				ids = append(ids, b.ID[0])
			}
			if !slices.Equal(ids, tc.expect) {
				t.Fatalf("order %v, want %v", ids, tc.expect)
			}
			if !slices.Equal(in, tc.blocks) {
				t.Fatal("scrubOrder changed its input")
			}
		})
	}
}

// TestScrubRound: a round over a real store verifies every settled block
// once, counts their bytes, quarantines and counts a flipped byte exactly
// as a read does, and leaves a fresh block for a later round.
func TestScrubRound(t *testing.T) {
	s, err := OpenStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	var ids []ID
	var total int64
	for i := range 4 {
		data := bytes.Repeat([]byte(fmt.Sprintf("block %d ", i)), 20000+i)
		id := Sum(data)
		if err := s.Write(id, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		if i < 3 {
			os.Chtimes(s.path(id), old, old)
			total += int64(len(data))
		}
		ids = append(ids, id)
	}
	// Bit rot in block 1: one flipped byte, the file's time unchanged.
	p := s.path(ids[1])
	raw, _ := os.ReadFile(p)
	raw[len(raw)/2] ^= 0x01
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(p, old, old)

	var flagged []ID
	sc := NewScrubber(s, ScrubConfig{Rate: 1 << 40, OnCorrupt: func(id ID) { flagged = append(flagged, id) }}, nil)
	if err := sc.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := sc.Stats.Bytes.Load(); got != total {
		t.Errorf("scrubbed %d bytes, want %d (the three settled blocks)", got, total)
	}
	if s.Corrupt.Load() != 1 || s.Has(ids[1]) || !slices.Equal(flagged, ids[1:2]) {
		t.Fatalf("corrupt copy: counted %d, still stored %v, reported %v", s.Corrupt.Load(), s.Has(ids[1]), flagged)
	}
	for _, i := range []int{0, 2, 3} {
		if !s.Has(ids[i]) {
			t.Errorf("good block %d removed", i)
		}
	}
	if _, ok := sc.verified[ids[3]]; ok {
		t.Error("the block just stored was verified; it should wait to settle")
	}
	// The next round verifies the same good blocks again, the ones
	// verified longest ago first, and finds nothing new.
	if err := sc.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Corrupt.Load() != 1 || sc.Stats.Rounds.Load() != 2 || sc.Stats.Blocks.Load() != 5 {
		t.Fatalf("second round: corrupt %d, rounds %d, blocks %d; want 1, 2, 5", s.Corrupt.Load(), sc.Stats.Rounds.Load(), sc.Stats.Blocks.Load())
	}
}

// TestScrubUnreadableBlock: a block the scrub cannot read (an I/O error,
// here its file replaced by a directory) is neither verified nor counted
// as scrubbed; it is counted as a failure and read again next round, and
// verified once it reads.
func TestScrubUnreadableBlock(t *testing.T) {
	s, err := OpenStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("unreadable "), 10000)
	id := Sum(data)
	if err := s.Write(id, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	p := s.path(id)
	good, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(p, old, old)

	sc := NewScrubber(s, ScrubConfig{Rate: 1 << 40}, nil)
	if err := sc.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := sc.verified[id]; ok || sc.Stats.Blocks.Load() != 0 || sc.Stats.Bytes.Load() != 0 || sc.Stats.Failed.Load() != 1 {
		t.Fatalf("unreadable block: verified %v, blocks %d, bytes %d, failed %d; want false, 0, 0, 1",
			ok, sc.Stats.Blocks.Load(), sc.Stats.Bytes.Load(), sc.Stats.Failed.Load())
	}
	if s.Corrupt.Load() != 0 {
		t.Errorf("an unreadable copy was counted corrupt")
	}

	// Readable again: the next round verifies it.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, good, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(p, old, old)
	if err := sc.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := sc.verified[id]; !ok || sc.Stats.Blocks.Load() != 1 || sc.Stats.Failed.Load() != 1 {
		t.Fatalf("readable again: verified %v, blocks %d, failed %d; want true, 1, 1", ok, sc.Stats.Blocks.Load(), sc.Stats.Failed.Load())
	}
}

package scheduler

import (
	"testing"
	"time"
)

func TestByteBudget(t *testing.T) {
	b := &byteBudget{left: 100}
	if !b.take(60) || b.take(41) || !b.take(40) || b.take(1) {
		t.Fatal("take past the budget, or refused within it")
	}
	b.give(60, 0)
	if !b.take(60) || b.take(1) {
		t.Fatal("give did not return the bytes, or returned more")
	}
	if z := (&byteBudget{}); z.take(1) || !z.take(0) {
		t.Fatal("an empty budget gave a byte")
	}
}

// A share borrowed goes back only once it is free: while another reducer
// still holds bytes of it, the budget stays above its own size.
func TestByteBudgetRepays(t *testing.T) {
	b := &byteBudget{left: 10}
	b.borrow(100)
	b.borrow(100)
	if !b.take(150) || !b.take(60) || b.take(1) {
		t.Fatal("borrowed shares not taken whole")
	}
	b.give(60, 100) // 150 held: 160 of 210 in use is more than one share
	if n := b.takeRepaid(); n != 0 {
		t.Fatalf("repaid %d shares while 150 bytes of them are held", n)
	}
	b.give(100, 100) // 50 held: one share free
	if n := b.takeRepaid(); n != 1 || b.take(61) || !b.take(60) {
		t.Fatalf("repaid %d shares, want 1, and 60 bytes left", n)
	}
	b.give(110, 100)
	if n := b.takeRepaid(); n != 1 || b.take(11) || !b.take(10) {
		t.Fatalf("repaid %d shares, want the last one, and the budget's own 10 bytes left", n)
	}
}

func TestBufferPool(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := &bufferPool{max: 2, full: 2}
	if b, size := p.get(t0); b != nil || size != p.full {
		t.Fatalf("an empty pool gave %d bytes, size %d", len(b), size)
	}
	_, _ = p.get(t0)
	if _, size := p.get(t0); size != p.squeezed() {
		t.Fatalf("a third map task got size %d with both shares out", size)
	}
	a, b, c := make([]byte, 2), make([]byte, 2), make([]byte, 2)
	p.put(a, p.full)
	p.put(b, p.full)
	p.put(c, p.squeezed()) // no share left: dropped
	if got, _ := p.get(t0); &got[0] != &b[0] {
		t.Fatal("want the last kept")
	}
	if got, _ := p.get(t0); &got[0] != &a[0] {
		t.Fatal("want the first kept")
	}
	p.put(nil, p.full) // a map task whose buffer never grew to full size
	p.put(a, p.full)
	p.trim(t0.Add(sortBufferIdle)) // asked for just now: kept
	if got, _ := p.get(t0.Add(sortBufferIdle)); got == nil {
		t.Fatal("trimmed while map tasks ran")
	}
	p.put(a, p.full)
	p.trim(t0.Add(2*sortBufferIdle + time.Second))
	if got, _ := p.get(t0.Add(3 * sortBufferIdle)); got != nil {
		t.Fatal("an idle pool kept its buffers")
	}
}

// The reducers borrow the shares of the sort buffers the pool keeps once
// no map task runs on the node, and a map task that starts meanwhile gets
// a squeezed sort buffer until they give them back.
func TestShuffleMemBorrowsIdleSortBuffers(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const full = 1 << 20
	s := &Scheduler{cfg: Config{ShuffleMemory: 10}, shuffleMem: &byteBudget{left: 10}, sortBufs: &bufferPool{max: 2, full: full}}
	if s.takeShuffleMem(11) {
		t.Fatal("held 11 bytes with no sort buffer to borrow")
	}
	// Two map tasks run; one ends and leaves its buffer.
	s.sortBufs.get(t0)
	s.sortBufs.get(t0)
	s.sortBufs.put(make([]byte, full), full)
	if s.takeShuffleMem(11) {
		t.Fatal("borrowed a kept buffer while a map task runs: the next one would need a fresh buffer")
	}
	s.sortBufs.put(make([]byte, full), full) // the other ends
	if !s.takeShuffleMem(full) || !s.takeShuffleMem(full) || s.takeShuffleMem(11) {
		t.Fatal("did not borrow both idle buffers' shares, or more")
	}
	if buf, size := s.sortBufs.get(t0); buf != nil || size != s.sortBufs.squeezed() {
		t.Fatalf("a map task got %d bytes of buffer, size %d, while the reducers hold every share", len(buf), size)
	}
	s.sortBufs.put(nil, s.sortBufs.squeezed())
	s.giveShuffleMem(full)
	if _, size := s.sortBufs.get(t0); size != full {
		t.Fatalf("a map task got a %d-byte buffer after a share was repaid", size)
	}
	if _, size := s.sortBufs.get(t0); size != s.sortBufs.squeezed() {
		t.Fatal("two shares repaid for one")
	}
	s.giveShuffleMem(full)
	if _, size := s.sortBufs.get(t0); size != full {
		t.Fatal("the second share was not repaid")
	}
	if s.takeShuffleMem(11) || !s.takeShuffleMem(10) {
		t.Fatal("the reducers' own 10 bytes are not what is left")
	}
	// ShuffleMemory < 0: every segment spooled, nothing borrowed.
	s = &Scheduler{cfg: Config{ShuffleMemory: -1}, shuffleMem: &byteBudget{}, sortBufs: &bufferPool{max: 2, full: full}}
	s.sortBufs.get(t0)
	s.sortBufs.put(make([]byte, full), full)
	if s.takeShuffleMem(1) {
		t.Fatal("held a segment with ShuffleMemory < 0")
	}
}

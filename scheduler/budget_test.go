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
	b.give(60)
	if !b.take(60) || b.take(1) {
		t.Fatal("give did not return the bytes, or returned more")
	}
	if z := (&byteBudget{}); z.take(1) || !z.take(0) {
		t.Fatal("an empty budget gave a byte")
	}
}

func TestBufferPool(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := &bufferPool{max: 2}
	if p.get(t0) != nil {
		t.Fatal("an empty pool gave a buffer")
	}
	a, b, c := make([]byte, 1), make([]byte, 2), make([]byte, 3)
	p.put(a)
	p.put(b)
	p.put(c) // over max: dropped
	p.put(nil)
	if got := p.get(t0); len(got) != 2 {
		t.Fatalf("got %d bytes, want the last kept (2)", len(got))
	}
	if got := p.get(t0); len(got) != 1 {
		t.Fatalf("got %d bytes, want 1", len(got))
	}
	if p.get(t0) != nil {
		t.Fatal("the third buffer was kept past max")
	}
	p.put(a)
	p.trim(t0.Add(sortBufferIdle)) // asked for just now: kept
	if p.get(t0.Add(sortBufferIdle)) == nil {
		t.Fatal("trimmed while map tasks ran")
	}
	p.put(a)
	p.trim(t0.Add(2*sortBufferIdle + time.Second))
	if p.get(t0.Add(3*sortBufferIdle)) != nil {
		t.Fatal("an idle pool kept its buffers")
	}
}

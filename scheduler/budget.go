package scheduler

import (
	"sync"
	"time"

	"shoal.dev/shoal/shuffle"
)

// DefaultShuffleMemory is Config.ShuffleMemory's default: 64 MiB of
// fetched map output held in memory per node, beside the map tasks' sort
// buffers (Slots × SortBuffer: 256 MiB on 2 cores), within an agent's
// 512 MiB.
const DefaultShuffleMemory = 64 << 20

// byteBudget is a count of bytes that goroutines take and give back: the
// memory reducers may hold fetched segments in. take never blocks. Its
// capacity is Config.ShuffleMemory plus what it borrowed of the sort
// buffers' share of the node's memory (see bufferPool.lend), in shares of
// one sort buffer; give pays borrowed shares back as soon as they are
// free (repaid).
type byteBudget struct {
	mu       sync.Mutex
	left     int64
	borrowed int // shares borrowed, not yet repaid
	repaid   int // shares freed since the last call of takeRepaid
}

// take takes n bytes if that many are left, and says whether it did.
func (b *byteBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.left {
		return false
	}
	b.left -= n
	return true
}

// give gives back n bytes taken, and repays every borrowed share of
// share bytes that is now free.
func (b *byteBudget) give(n, share int64) {
	b.mu.Lock()
	b.left += n
	b.repayLocked(share)
	b.mu.Unlock()
}

// borrow adds one share of share bytes to the capacity.
func (b *byteBudget) borrow(share int64) {
	b.mu.Lock()
	b.left += share
	b.borrowed++
	b.mu.Unlock()
}

func (b *byteBudget) repayLocked(share int64) {
	for b.borrowed > 0 && share > 0 && b.left >= share {
		b.left -= share
		b.borrowed--
		b.repaid++
	}
}

// takeRepaid returns how many shares were repaid since it was last
// called (for bufferPool.repay).
func (b *byteBudget) takeRepaid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.repaid
	b.repaid = 0
	return n
}

// sortBufferIdle is how long a node keeps its idle map tasks' sort
// buffers: past it, with no map task started meanwhile, they are dropped.
const sortBufferIdle = 30 * time.Second

// bufferPool accounts for the sort buffers' share of a node's memory: max
// buffers of full bytes (one per slot). It keeps the sort buffers of
// finished map tasks for the next ones until no map task has taken one
// for sortBufferIdle. While no map task runs, a kept buffer may be lent
// to the reducers (lend: it is freed, and they hold fetched segments in
// its place until they repay it); while every share is held by a map
// task, kept or lent, a map task gets a sort buffer of squeezed bytes
// instead of full.
type bufferPool struct {
	mu   sync.Mutex
	free [][]byte
	max  int
	full int       // a full sort buffer's length
	out  int       // shares held by running map tasks (get to put)
	lent int       // shares lent to the reducers
	used time.Time // when a map task last asked for one
}

// squeezedBuffer is the sort buffer of a map task that starts while the
// reducers hold every share the running map tasks do not: 1/8 of a full
// one, so that it spills more rather than wait for them.
func (p *bufferPool) squeezed() int { return max(shuffle.MinBufferBytes, p.full/8) }

// get returns a kept buffer or nil, and the size of the sort buffer the
// map task may use: full if a share is free, else squeezed. The task
// calls put when done, with the second result.
func (p *bufferPool) get(now time.Time) ([]byte, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used = now
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		p.out++
		return b, p.full
	}
	if p.out+p.lent < p.max {
		p.out++
		return nil, p.full
	}
	return nil, p.squeezed()
}

// put keeps b, the sort buffer of a map task that got size from get, or
// frees it (shuffle.FreeBuffer: a buffer mapped outside the heap must be
// unmapped, not dropped) when it is not full-size or its share is lent.
func (p *bufferPool) put(b []byte, size int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if size == p.full {
		p.out--
	}
	if b != nil && len(b) == p.full && len(p.free)+p.out+p.lent < p.max {
		p.free = append(p.free, b)
		return
	}
	shuffle.FreeBuffer(b)
}

// lend frees a kept buffer and lends its share to the reducers, when no
// map task runs on this node (a kept buffer is for the next one); it
// reports whether it did.
func (p *bufferPool) lend() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.free)
	if n == 0 || p.out > 0 {
		return false
	}
	shuffle.FreeBuffer(p.free[n-1])
	p.free = p.free[:n-1]
	p.lent++
	return true
}

// repay takes back n shares the reducers borrowed.
func (p *bufferPool) repay(n int) {
	p.mu.Lock()
	p.lent -= n
	p.mu.Unlock()
}

// trim frees every kept buffer when none was asked for since
// sortBufferIdle before now.
func (p *bufferPool) trim(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Sub(p.used) > sortBufferIdle {
		p.dropLocked()
	}
}

// drop frees every kept buffer (the scheduler stops).
func (p *bufferPool) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropLocked()
}

func (p *bufferPool) dropLocked() {
	for _, b := range p.free {
		shuffle.FreeBuffer(b)
	}
	p.free = nil
}

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
// memory reducers may hold fetched segments in. take never blocks.
type byteBudget struct {
	mu   sync.Mutex
	left int64
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

// give gives back n bytes taken.
func (b *byteBudget) give(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.left += n
	b.mu.Unlock()
}

// sortBufferIdle is how long a node keeps its idle map tasks' sort
// buffers: past it, with no map task started meanwhile, they are dropped.
const sortBufferIdle = 30 * time.Second

// bufferPool keeps the sort buffers of finished map tasks for the next
// ones, at most max of them (one per slot), until no map task has taken
// one for sortBufferIdle.
type bufferPool struct {
	mu   sync.Mutex
	free [][]byte
	max  int
	used time.Time // when a map task last asked for one
}

// get returns a kept buffer, or nil.
func (p *bufferPool) get(now time.Time) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used = now
	if len(p.free) == 0 {
		return nil
	}
	b := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	return b
}

// put keeps b unless max are kept; then it frees b (shuffle.FreeBuffer:
// a buffer mapped outside the heap must be unmapped, not dropped).
func (p *bufferPool) put(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b != nil && len(p.free) < p.max {
		p.free = append(p.free, b)
		return
	}
	shuffle.FreeBuffer(b)
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

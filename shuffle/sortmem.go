package shuffle

import (
	"math"
	"runtime/debug"
	"sync"
	"unsafe"
)

// A map task's full-size sort buffer of at least mappedMin bytes is
// mapped outside Go's heap (mmap, on Linux), with the advice to back it by
// transparent huge pages given before its first byte is touched. From
// Go's heap, a 128 MiB buffer of reused heap memory is cleared by the
// allocator first, page by page in 4 KiB pages (the huge-page advice comes
// too late): in a 1 GiB terasort that clearing and the page faults of
// filling fresh buffers were 1.5–3 of the agents' ~18 CPU-s. A mapped
// 128 MiB took 9–26 ms to touch on the bench VM, a heap one 36–380 ms.
//
// A mapped buffer is unmapped when the writer releases it (Close, Abort)
// unless MapConfig.KeepBuffer hands it on (MapWriter.Buffer); its holder
// then gives it to another writer or frees it with FreeBuffer. While
// buffers are mapped, the Go runtime's soft memory limit, if one is set,
// is lowered by their size, so that the heap and the buffers together stay
// within it as they did when the buffers were on the heap.
const mappedMin = 4 << 20

var mapped struct {
	sync.Mutex
	bufs  map[*byte][]byte // data pointer -> the mapping
	total int64            // bytes mapped
	base  int64            // the memory limit without mapped buffers
	set   int64            // the limit this package set last
}

// newSortBuffer returns n zeroed bytes (n a multiple of 8), 8-byte
// aligned: mapped outside the heap when n >= mappedMin and the system
// allows it, else from the heap (alignedBytes).
func newSortBuffer(n int) []byte {
	if n < mappedMin {
		return alignedBytes(n)
	}
	b := mapMem(n)
	if b == nil {
		return alignedBytes(n)
	}
	mapped.Lock()
	defer mapped.Unlock()
	if mapped.bufs == nil {
		mapped.bufs = map[*byte][]byte{}
	}
	mapped.bufs[unsafe.SliceData(b)] = b
	setMappedLocked(mapped.total + int64(n))
	return b
}

// FreeBuffer releases a sort buffer that MapWriter.Buffer returned and
// that no writer will be given: a buffer mapped outside Go's heap is
// unmapped at once, and must not be touched after; any other is left to
// the garbage collector. Nil is ignored.
func FreeBuffer(b []byte) {
	if len(b) == 0 {
		return
	}
	mapped.Lock()
	defer mapped.Unlock()
	m, ok := mapped.bufs[unsafe.SliceData(b)]
	if !ok {
		return
	}
	delete(mapped.bufs, unsafe.SliceData(b))
	unmapMem(m)
	setMappedLocked(mapped.total - int64(len(m)))
}

// isMapped reports whether b starts a mapped sort buffer.
func isMapped(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	mapped.Lock()
	defer mapped.Unlock()
	_, ok := mapped.bufs[unsafe.SliceData(b)]
	return ok
}

// MappedBytes is the bytes of sort buffers mapped outside Go's heap now.
func MappedBytes() int64 {
	mapped.Lock()
	defer mapped.Unlock()
	return mapped.total
}

// setMappedLocked records total bytes mapped and sets the soft memory
// limit to its base less total (at least a quarter of the base). The base
// is the limit as found whenever it is not the one this last set (the
// agent's, or one set since); with no limit set it sets none.
func setMappedLocked(total int64) {
	if cur := debug.SetMemoryLimit(-1); cur != mapped.set {
		mapped.base = cur
	}
	mapped.total = total
	mapped.set = mapped.base
	if mapped.base != math.MaxInt64 {
		mapped.set = max(mapped.base-total, mapped.base/4)
	}
	debug.SetMemoryLimit(mapped.set)
}

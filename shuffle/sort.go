package shuffle

import (
	"bytes"
	"encoding/binary"
	"slices"
)

// entry indexes one record of the sort buffer. The buffer sorts entries,
// never records. A record of up to inlineMax bytes lives in its entry, so
// that sorting and writing it never reads the arena at a random place.
//
// A record's sort key is a sequence of windows: 8-byte windows of its key,
// then of its value; the last window of each is short (0 to 7 real bytes).
// An entry holds one window and its length. Comparing windows, then
// lengths, orders records like bytes.Compare on (key, value): zero padding
// only ever makes a key that ends tie with one that goes on with zeros,
// and the shorter length then puts the ending key first.
type entry struct {
	// prefix is the window, big-endian, zero past its end.
	prefix uint64
	off    uint32 // the record's offset in the arena, unless inline
	// tag holds the window's length (the bits of tagLen), whether the
	// entry ties with the one before it (tagTied), whether the record is
	// in data (tagInline), and the partition (from tagPartShift up).
	tag  uint32
	data [inlineMax]byte // the encoded record, if inline, then zeros
}

const (
	entrySize = 32
	inlineMax = 16
)

const (
	tagLen       = 15
	tagTied      = 16
	tagInline    = 32
	tagPartShift = 6
)

// recordOf is the encoded record of e (and maybe bytes after it).
func recordOf(arena []byte, e *entry) []byte {
	if e.tag&tagInline != 0 {
		return e.data[:]
	}
	return arena[e.off:]
}

// window is the big-endian value of b[from:from+8], zero-padded, and how
// many of its bytes are real.
func window(b []byte, from int) (uint64, uint32) {
	if len(b) >= from+8 {
		return binary.BigEndian.Uint64(b[from:]), 8
	}
	if from >= len(b) {
		return 0, 0
	}
	var w [8]byte
	n := copy(w[:], b[from:])
	return binary.BigEndian.Uint64(w[:]), uint32(n)
}

// arenaWindow is window(arena[start:start+length], from), reading 8 bytes
// at once and masking what is past the end when the arena allows.
func arenaWindow(arena []byte, start, length, from int) (uint64, uint32) {
	n := min(max(length-from, 0), 8)
	if p := start + from; p+8 <= len(arena) {
		return binary.BigEndian.Uint64(arena[p:]) &^ (1<<(64-8*n) - 1), uint32(n)
	}
	return window(arena[start:start+length], from)
}

// Thresholds of the sort: up to smallSort entries an insertion sort, up to
// radixSort a comparison sort, above an MSD radix sort.
const (
	smallSort = 16
	radixSort = 64
)

// sorter sorts sort-buffer entries by (partition, key, value): in place,
// by MSD radix passes (American flag sort) on the windows' bytes and
// lengths, and comparison sorts for small buckets.
//
// Entries that tie on their windows go on to their next windows breadth
// first. Level 0 sorts by the windows set at Emit, the keys' first 8
// bytes; each further level loads the next window of every entry still
// tied (gather) in one linear pass, and sorts each run of ties by it,
// until no run is left or what ties is equal records. The loads of a pass
// do not depend on each other, so their cache misses overlap, where a
// comparison that chased an offset into a 64 MiB arena would wait for each
// one. Inline records are never left tied: comparisons order them fully
// (see cmpEntry), missing nothing.
type sorter struct {
	arena  []byte
	count  []int // per partition
	next   []int
	bounds []int // partition p's entries are [bounds[p], bounds[p+1])

	wide, wideNext []uint32 // counts and heads of the 16-bit passes
	sink           byte
}

func newSorter(parts int) *sorter {
	return &sorter{count: make([]int, parts), next: make([]int, parts), bounds: make([]int, parts+1)}
}

// sort sorts es, whose records are in arena and whose windows are their
// keys' first, and returns the partition bounds (valid until the next
// call).
func (s *sorter) sort(es []entry, arena []byte) []int {
	s.arena = arena
	parts := len(s.count)
	switch {
	case parts == 1:
		s.bounds[0], s.bounds[1] = 0, len(es)
		if len(es) >= wideRadix {
			s.sortWide(es)
		} else {
			sortWindows(es, 0)
		}
	case parts <= 256 && len(es) >= wideRadix:
		s.sortByPartitionAndByte(es)
	default:
		s.sortByPartition(es)
		for p := range parts {
			sortWindows(es[s.bounds[p]:s.bounds[p+1]], 0)
		}
	}
	for p := range parts {
		s.breakTies(es[s.bounds[p]:s.bounds[p+1]])
	}
	return s.bounds
}

// sortByPartition moves each entry to its partition's bucket.
func (s *sorter) sortByPartition(es []entry) {
	count, next := s.count, s.next
	clear(count)
	for i := range es {
		count[es[i].tag>>tagPartShift]++
	}
	sum := 0
	for p, c := range count {
		s.bounds[p] = sum
		next[p] = sum
		sum += c
	}
	s.bounds[len(count)] = sum
	// American flag sort: move each entry straight to its bucket, in
	// place.
	for p := range count {
		end := s.bounds[p+1]
		for next[p] < end {
			v := es[next[p]]
			k := int(v.tag >> tagPartShift)
			for k != p {
				v, es[next[k]] = es[next[k]], v
				next[k]++
				k = int(v.tag >> tagPartShift)
			}
			es[next[p]] = v
			next[p]++
		}
	}
}

// sortByPartitionAndByte is sortByPartition and the first radix pass in
// one pass over memory, by partition and first window byte, and sorts
// the buckets from their second byte.
func (s *sorter) sortByPartitionAndByte(es []entry) {
	count, next := s.wideCounts()
	n := len(s.count) << 8
	count, next = count[:n], next[:n]
	clear(count)
	bucket := func(e *entry) int { return int(e.tag>>tagPartShift)<<8 | int(e.prefix>>56) }
	for i := range es {
		count[bucket(&es[i])]++
	}
	var sum uint32
	for b, c := range count {
		if b&255 == 0 {
			s.bounds[b>>8] = int(sum)
		}
		next[b] = sum
		sum += c
	}
	s.bounds[len(s.count)] = int(sum)
	var start uint32
	for b := range count {
		end := start + count[b]
		for next[b] < end {
			v := es[next[b]]
			k := bucket(&v)
			for k != b {
				v, es[next[k]] = es[next[k]], v
				next[k]++
				k = bucket(&v)
			}
			es[next[b]] = v
			next[b]++
		}
		start = end
	}
	start = 0
	for _, c := range count {
		if c > 1 {
			sortWindows(es[start:start+c], 1)
		}
		start += c
	}
}

// breakTies sorts the runs of a partition's entries that tie on their
// first windows, window after window (see sorter).
func (s *sorter) breakTies(es []entry) {
	if len(es) < 2 || !markTies(es) {
		return
	}
	for level := 1; s.gather(es, level); level++ {
		more := false
		forRuns(es, func(run []entry) {
			sortWindows(run, 0)
			if markTies(run) {
				more = true
			}
		})
		if !more {
			return
		}
	}
}

// forRuns calls fn on every run of tied entries.
func forRuns(es []entry, fn func(run []entry)) {
	for i := 0; i < len(es); {
		j := i + 1
		for j < len(es) && es[j].tag&tagTied != 0 {
			j++
		}
		if j-i > 1 {
			fn(es[i:j])
		}
		i = j
	}
}

// markTies flags, in each group of sorted entries with equal windows and
// lengths, every entry but the first as tied to its predecessor, and
// reports whether it flagged any. A group of inline records only is
// already in order (see cmpEntry) and stays unflagged.
func markTies(es []entry) bool {
	any := false
	for i := 0; i < len(es); {
		es[i].tag &^= tagTied
		arena := es[i].tag&tagInline == 0
		j := i + 1
		for j < len(es) && es[j].prefix == es[i].prefix && (es[j].tag^es[i].tag)&tagLen == 0 {
			arena = arena || es[j].tag&tagInline == 0
			j++
		}
		for x := i + 1; x < j; x++ {
			if arena {
				es[x].tag |= tagTied
			} else {
				es[x].tag &^= tagTied
			}
		}
		any = any || arena && j-i > 1
		i = j
	}
	return any
}

// gather loads window number level of the records of every run of tied
// entries: a key window while the key lasts, then value windows. A run
// whose records have no such window holds equal records: gather unties
// it. It reports whether any run is left. Records that tied on every
// window before agree on where their key ends, so a run never mixes key
// and value windows.
//
// Records are read at random places in the arena, so gather goes in
// blocks: a tight loop first touches the block's records, with so little
// work per load that many cache misses are in flight at once, and the
// reads that follow find the records cached. (A load that misses holds
// back the instructions after it, so a loop with more work per record
// overlaps fewer misses.)
func (s *sorter) gather(es []entry, level int) bool {
	more, done, value := false, false, false
	from := 0
	var sink byte
	for b := 0; b < len(es); b += gatherBlock {
		block := es[b:min(b+gatherBlock, len(es))]
		for i := range block {
			if block[i].tag&tagInline == 0 && (block[i].tag&tagTied != 0 || b+i+1 < len(es) && es[b+i+1].tag&tagTied != 0) {
				// The record's first bytes, and the next cache line
				// for windows that cross into it.
				o := int(block[i].off)
				sink += s.arena[o] + s.arena[min(o+15, len(s.arena)-1)]
			}
		}
		for i := range block {
			e := &block[i]
			if e.tag&tagTied == 0 {
				if b+i+1 == len(es) || es[b+i+1].tag&tagTied == 0 {
					continue // in no run
				}
				// A run starts.
				k, v, _ := decodeRecord(recordOf(s.arena, e))
				kw := len(k)/8 + 1
				if done = level >= kw+len(v)/8+1; done {
					continue
				}
				more = true
				value, from = level >= kw, 8*level
				if value {
					from = 8 * (level - kw)
				}
			} else if done {
				e.tag &^= tagTied
				continue
			}
			rec, start := s.arena, int(e.off)
			if e.tag&tagInline != 0 {
				rec, start = e.data[:], 0
			}
			h, kl, vl := decodeHeader(rec[start:])
			start, length := start+h, kl
			if value {
				start, length = start+kl, vl
			}
			w, n := arenaWindow(rec, start, length, from)
			e.prefix = w
			e.tag = e.tag&^tagLen | n
		}
	}
	s.sink = sink // keeps the touching loads
	return more
}

// gatherBlock is how many records gather touches before reading them.
const gatherBlock = 32

// digit is an entry's digit at depth: a window byte for 0-7, the window's
// length for 8.
func digit(e *entry, depth int) int {
	if depth < 8 {
		return int(byte(e.prefix >> (56 - 8*uint(depth))))
	}
	return int(e.tag & tagLen)
}

// cmpEntry orders entries by window, then window length; then, when both
// records are inline, by the records themselves, which costs no cache
// miss; an entry whose record is in the arena sorts after those inline.
// Entries it finds equal are left for the next windows.
func cmpEntry(a, b entry) int {
	switch {
	case a.prefix < b.prefix:
		return -1
	case a.prefix > b.prefix:
		return 1
	}
	if c := int(a.tag&tagLen) - int(b.tag&tagLen); c != 0 {
		return c
	}
	switch a.tag & b.tag & tagInline {
	case 0:
		return int(b.tag&tagInline) - int(a.tag&tagInline)
	}
	return cmpInline(&a, &b)
}

// cmpInline compares two inline records.
func cmpInline(a, b *entry) int {
	if a.data == b.data {
		return 0
	}
	ka, va, _ := decodeRecord(a.data[:])
	kb, vb, _ := decodeRecord(b.data[:])
	if c := bytes.Compare(ka, kb); c != 0 {
		return c
	}
	return bytes.Compare(va, vb)
}

// sortWindows sorts es, entries whose digits before depth are equal, by
// window and length.
func sortWindows(es []entry, depth int) {
	for len(es) > 1 {
		if depth == 9 {
			// Equal windows: order the inline records among them.
			if !isSorted(es) {
				slices.SortFunc(es, cmpEntry)
			}
			return
		}
		if len(es) <= radixSort {
			if isSorted(es) {
				return // often so: runs of equal values
			}
			if len(es) <= smallSort {
				insertionSort(es)
			} else {
				slices.SortFunc(es, cmpEntry)
			}
			return
		}
		var count [256]int
		for i := range es {
			count[digit(&es[i], depth)]++
		}
		if count[digit(&es[0], depth)] == len(es) {
			depth++
			continue
		}
		// American flag sort by the digit.
		var next [256]int
		sum := 0
		for b, c := range count {
			next[b] = sum
			sum += c
		}
		start := 0
		for b := range 256 {
			end := start + count[b]
			for next[b] < end {
				v := es[next[b]]
				k := digit(&v, depth)
				for k != b {
					v, es[next[k]] = es[next[k]], v
					next[k]++
					k = digit(&v, depth)
				}
				es[next[b]] = v
				next[b]++
			}
			start = end
		}
		start = 0
		for _, c := range count {
			if c > 1 {
				sortWindows(es[start:start+c], depth+1)
			}
			start += c
		}
		return
	}
}

// wideRadix is the size from which a partition's first pass sorts by two
// bytes at once.
const wideRadix = 1 << 15

// sortWide sorts es by window and length, with a first pass on the
// window's first two bytes: on big inputs it saves a pass over memory.
func (s *sorter) sortWide(es []entry) {
	count, next := s.wideCounts()
	clear(count)
	for i := range es {
		count[es[i].prefix>>48]++
	}
	var sum uint32
	for b, c := range count {
		next[b] = sum
		sum += c
	}
	var start uint32
	for b := range count {
		end := start + count[b]
		for next[b] < end {
			v := es[next[b]]
			k := int(v.prefix >> 48)
			for k != b {
				v, es[next[k]] = es[next[k]], v
				next[k]++
				k = int(v.prefix >> 48)
			}
			es[next[b]] = v
			next[b]++
		}
		start = end
	}
	start = 0
	for _, c := range count {
		if c > 1 {
			sortWindows(es[start:start+c], 2)
		}
		start += c
	}
}

// wideCounts returns the counts and heads of the wide passes, 1<<16 each.
func (s *sorter) wideCounts() (count, next []uint32) {
	if s.wide == nil {
		s.wide = make([]uint32, 1<<16)
		s.wideNext = make([]uint32, 1<<16)
	}
	return s.wide, s.wideNext
}

func isSorted(es []entry) bool {
	for i := 1; i < len(es); i++ {
		if cmpEntry(es[i], es[i-1]) < 0 {
			return false
		}
	}
	return true
}

func insertionSort(es []entry) {
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && cmpEntry(es[j], es[j-1]) < 0; j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}

package builtin

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math"
	"math/bits"
	"strconv"

	"shoal.dev/shoal/job"
)

// wcTable is wordcount's table of counts: open addressing with linear
// probing over a power-of-two array of 16-byte slots, at most half of them
// used. It replaces a map[string]int whose lookups were ~85% of a wordcount
// agent's CPU: a slot is a fraction of a Go map entry and the string it
// points to, and a word of at most 8 bytes (most words of text) sits in
// its slot itself, so that a lookup touches one cache line and more of the
// table stays in cache while several map tasks share the cores. Longer
// words sit back to back in a byte arena.
//
// Words of at most 8 bytes are hashed by one multiplication of their bytes
// with the table's random seed (wyhash's mix); longer ones by hash/maphash
// with the table's own seed.
//
// It holds at most wcMaxWords words and, unless one word alone is longer,
// wcMaxBytes bytes of them; the mapper flushes it (emit emits every word
// and empties it) before an insertion would pass either bound.
type wcTable struct {
	seed    maphash.Seed
	seed64  uint64
	slots   []wcSlot // len is a power of two; n <= len/2
	mask    uint64
	n       int    // words in the table
	bytes   int    // their bytes
	arena   []byte // the words longer than 8 bytes (see wcSlot)
	scratch [8]byte

	testHash func([]byte) uint64 // replaces the hash in tests, to force collisions
}

// wcSlot is one slot of a wcTable. tag == 0 marks it empty.
type wcSlot struct {
	// tag is the hash's bits 40..63, then the word's length in the low
	// byte (255 for 255 bytes or more; a word is never empty).
	tag   uint32
	count uint32
	// data is the word's bytes, little-endian, for a word of at most 8
	// bytes; else the word's offset in the arena, preceded there by its
	// length as 4 bytes little-endian if 255 bytes or more.
	data uint64
}

const (
	wcMinSlots = 1 << 10
	wcInline   = 8 // the longest word a slot holds itself
	wcLongLen  = 255
)

func newWCTable() *wcTable {
	var s [8]byte
	seed := maphash.MakeSeed()
	return &wcTable{
		seed:   seed,
		seed64: maphash.Bytes(seed, s[:]) | 1,
		slots:  make([]wcSlot, wcMinSlots),
		mask:   wcMinSlots - 1,
	}
}

// key returns w's slot data, if it fits (else 0), and its hash. rest is the
// line from w's start on: a word of at most 8 bytes with 8 bytes of rest is
// loaded in one read.
func (t *wcTable) key(w, rest []byte) (data, h uint64) {
	n := len(w)
	if n > wcInline {
		h = maphash.Bytes(t.seed, w)
	} else {
		if len(rest) >= 8 {
			data = binary.LittleEndian.Uint64(rest) & (^uint64(0) >> (64 - 8*n))
		} else {
			for i := n - 1; i >= 0; i-- {
				data = data<<8 | uint64(w[i])
			}
		}
		hi, lo := bits.Mul64(data^t.seed64, uint64(n)^0x9E3779B97F4A7C15)
		h = hi ^ lo
	}
	if t.testHash != nil {
		h = t.testHash(w)
	}
	return data, h
}

func tagOf(n int, h uint64) uint32 {
	return uint32(h>>32)&^0xff | uint32(min(n, wcLongLen))
}

// word returns the bytes of the word in slot s (for an inline word, in
// t.scratch).
func (t *wcTable) word(s *wcSlot) []byte {
	n := int(s.tag & 0xff)
	if n <= wcInline {
		binary.LittleEndian.PutUint64(t.scratch[:], s.data)
		return t.scratch[:n]
	}
	off := int(s.data)
	if n == wcLongLen {
		n = int(binary.LittleEndian.Uint32(t.arena[off-4:]))
	}
	return t.arena[off : off+n]
}

// find returns the slot holding w (found) or the empty slot where w would
// go. data and h are key's.
func (t *wcTable) find(w []byte, data, h uint64) (i uint64, found bool) {
	tag := tagOf(len(w), h)
	for i = h & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.tag == tag {
			if len(w) <= wcInline {
				if s.data == data {
					return i, true
				}
			} else if bytes.Equal(t.word(s), w) {
				return i, true
			}
		} else if s.tag == 0 {
			return i, false
		}
	}
}

// insert puts w, with key data and h and count 1, in the empty slot i that
// find returned for it, growing the table past half full.
func (t *wcTable) insert(i uint64, w []byte, data, h uint64) {
	if len(w) > wcInline {
		if len(w) >= wcLongLen {
			t.arena = binary.LittleEndian.AppendUint32(t.arena, uint32(len(w)))
		}
		data = uint64(len(t.arena))
		t.arena = append(t.arena, w...)
	}
	t.slots[i] = wcSlot{tag: tagOf(len(w), h), count: 1, data: data}
	t.n++
	t.bytes += len(w)
	if 2*t.n > len(t.slots) {
		t.grow()
	}
}

// grow doubles the slots. A slot's place is rehashed from its tag's hash
// bits and, for the index, the hash again: the index bits are not kept.
func (t *wcTable) grow() {
	old := t.slots
	t.slots = make([]wcSlot, 2*len(old))
	t.mask = uint64(len(t.slots) - 1)
	for k := range old {
		s := &old[k]
		if s.tag == 0 {
			continue
		}
		w := t.word(s)
		_, h := t.key(w, w)
		i := h & t.mask
		for t.slots[i].tag != 0 {
			i = (i + 1) & t.mask
		}
		t.slots[i] = *s
	}
}

// emit emits every word with its count and empties the table, keeping its
// slots and arena for reuse. buf is scratch for the counts' digits.
func (t *wcTable) emit(out job.Emitter, buf []byte) ([]byte, error) {
	for i := range t.slots {
		s := &t.slots[i]
		if s.tag == 0 {
			continue
		}
		buf = strconv.AppendUint(buf[:0], uint64(s.count), 10)
		if err := out.Emit(t.word(s), buf); err != nil {
			return buf, err
		}
	}
	clear(t.slots)
	t.n, t.bytes, t.arena = 0, 0, t.arena[:0]
	return buf, nil
}

// add counts one occurrence of w (with key data and h), flushing the table
// into out first when w is new and would take it past its bounds.
func (m *wordCountMapper) add(w []byte, data, h uint64, out job.Emitter) error {
	t := m.table
	i, found := t.find(w, data, h)
	if found {
		s := &t.slots[i]
		if s.count == math.MaxUint32 {
			// Emit what the slot has counted so far rather than overflow;
			// the shuffle's combiner adds the pairs up.
			m.buf = strconv.AppendUint(m.buf[:0], uint64(s.count), 10)
			if err := out.Emit(t.word(s), m.buf); err != nil {
				return err
			}
			s.count = 0
		}
		s.count++
		return nil
	}
	if t.n > 0 && (t.n >= wcMaxWords || t.bytes+len(w) > wcMaxBytes) {
		if err := m.Close(out); err != nil {
			return err
		}
		i, _ = t.find(w, data, h)
	}
	t.insert(i, w, data, h)
	return nil
}

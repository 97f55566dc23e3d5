package builtin

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"maps"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"shoal.dev/shoal/job"
)

// mapWordCountMapper is the wordcount mapper as it was before wcTable, over
// a map[string]int with the same bounds: the model the table is checked
// against and the baseline of BenchmarkWordCountMapper.
type mapWordCountMapper struct {
	index  map[string]int // word -> its slot in counts
	counts []int64
	bytes  int // bytes of the words in index
	buf    []byte
}

func (m *mapWordCountMapper) Map(_, line []byte, out job.Emitter) error {
	for start, end := nextWord(line, 0); start < end; start, end = nextWord(line, end) {
		w := line[start:end]
		if i, ok := m.index[string(w)]; ok {
			m.counts[i]++
			continue
		}
		if len(m.counts) >= wcMaxWords || m.bytes+len(w) > wcMaxBytes {
			if err := m.Close(out); err != nil {
				return err
			}
		}
		m.index[string(w)] = len(m.counts)
		m.counts = append(m.counts, 1)
		m.bytes += len(w)
	}
	return nil
}

func (m *mapWordCountMapper) Close(out job.Emitter) error {
	for w, i := range m.index {
		m.buf = strconv.AppendInt(m.buf[:0], m.counts[i], 10)
		if err := out.Emit([]byte(w), m.buf); err != nil {
			return err
		}
	}
	clear(m.index)
	m.counts, m.bytes = m.counts[:0], 0
	return nil
}

// collector keeps emitted pairs summed by word, checking that no word comes
// twice before take.
type collector struct {
	t   *testing.T
	got map[string]int64
}

func (c *collector) Emit(k, v []byte) error {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n <= 0 {
		c.t.Fatalf("word %.20q: count %q", k, v)
	}
	if _, dup := c.got[string(k)]; dup {
		c.t.Fatalf("word %.20q emitted twice in one flush", k)
	}
	c.got[string(k)] = n
	return nil
}

func (c *collector) take() map[string]int64 {
	g := c.got
	c.got = map[string]int64{}
	return g
}

// TestWCTableMatchesMap feeds the same words to the wcTable mapper and to
// the map mapper's flush rule kept as a plain map, and checks that every
// flush emits exactly the model's words and counts: random vocabularies
// (past wcMaxWords and wcMaxBytes, so flushes happen), empty and long words
// and lines, and hash functions that collide on purpose (few distinct
// hashes, all equal), which exercise the probing.
func TestWCTableMatchesMap(t *testing.T) {
	seed := maphash.MakeSeed()
	hashes := []struct {
		name string
		h    func([]byte) uint64
	}{
		{"own", nil},
		// Tags equal but for the length, 16 places.
		{"16-values", func(w []byte) uint64 { return maphash.Bytes(seed, w) & 0xf }},
		{"by-length", func(w []byte) uint64 { return uint64(len(w)) }},
		{"constant", func([]byte) uint64 { return 7 }},
	}
	type shape struct {
		vocab, words, maxLen int
		long                 bool // some words of about wcMaxBytes/3 and past wcMaxBytes
	}
	shapes := []shape{
		{vocab: 1, words: 100, maxLen: 3},
		{vocab: 50, words: 5000, maxLen: 8},
		{vocab: 2000, words: 20000, maxLen: 20},
		{vocab: 1500, words: 6000, maxLen: 10, long: true},
		{vocab: wcMaxWords + wcMaxWords/3, words: 4 * wcMaxWords, maxLen: 12},
		{vocab: 300000, words: 500000, maxLen: 40}, // ~6 MB of distinct words: wcMaxBytes flushes
	}
	for _, hs := range hashes {
		for si, sh := range shapes {
			if hs.h != nil && sh.vocab >= 2000 {
				continue // quadratic by design
			}
			seeds := uint64(3)
			if sh.vocab > 2000 {
				seeds = 1 // the flush bounds, a second or more each under -race
			}
			for seedN := uint64(1); seedN <= seeds; seedN++ {
				name := fmt.Sprintf("%s/shape%d/seed%d", hs.name, si, seedN)
				t.Run(name, func(t *testing.T) {
					t.Logf("seed %d", seedN)
					checkWCTable(t, hs.h, sh.vocab, sh.words, sh.maxLen, sh.long, seedN)
				})
			}
		}
	}
}

func checkWCTable(t *testing.T, hash func([]byte) uint64, vocabN, words, maxLen int, long bool, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 14))
	vocab := make([][]byte, vocabN)
	for i := range vocab {
		n := 1 + rng.IntN(maxLen)
		if edges := []int{7, 8, 9, 254, 255, 256}; long && i < len(edges) {
			n = edges[i] // around the inline and the length-byte bounds
		}
		if long && i%500 == 499 { // in the tail: drawn a few times
			n = wcMaxBytes/3 + rng.IntN(wcMaxBytes)
		}
		w := make([]byte, n)
		if n > 64 {
			// Long words: a random head, then the same byte.
			w = bytes.Repeat([]byte{'x'}, n)
			n = 64
		}
		for j := range w[:n] {
			// Any byte but ASCII whitespace, UTF-8 or not.
			for w[j] = byte(rng.IntN(256)); asciiSpace[w[j]]; w[j] = byte(rng.IntN(256)) {
			}
		}
		vocab[i] = w
	}
	zipf := rand.NewZipf(rng, 1.1, 1, uint64(vocabN-1))
	seps := []string{" ", "\t", "  ", "\r\n", "\v\f"}

	var lines [][]byte
	next := 0
	var lineWords [][][]byte
	for done := 0; done < words; {
		// A line of 0..15 words, with separators before, between and after.
		var line []byte
		var ws [][]byte
		for range rng.IntN(16) {
			line = append(line, seps[rng.IntN(len(seps))]...)
			w := vocab[int(zipf.Uint64())]
			if rng.IntN(2) == 0 {
				// Every other word walks the vocabulary, so that the
				// large ones fill the table past its bounds.
				w = vocab[next%vocabN]
				next++
			}
			line = append(line, w...)
			ws = append(ws, w)
		}
		if rng.IntN(2) == 0 {
			line = append(line, seps[rng.IntN(len(seps))]...)
		}
		done += len(ws) + 1
		lines, lineWords = append(lines, line), append(lineWords, ws)
	}

	// Word by word through add with the given hash, each flush checked
	// against the model: the old mapper's rule over a plain map.
	c := &collector{t: t, got: map[string]int64{}}
	m := &wordCountMapper{table: newWCTable()}
	m.table.testHash = hash
	model, modelBytes, flushes := map[string]int64{}, 0, 0
	check := func(when string) {
		t.Helper()
		if got := c.take(); !maps.Equal(got, model) {
			t.Fatalf("%s %d: table emitted %d words, the model %d (or counts differ)", when, flushes, len(got), len(model))
		}
		model, modelBytes = map[string]int64{}, 0
	}
	for _, ws := range lineWords {
		for _, w := range ws {
			if _, ok := model[string(w)]; !ok && len(model) > 0 &&
				(len(model) >= wcMaxWords || modelBytes+len(w) > wcMaxBytes) {
				flushes++
				if err := add(m, w, c); err != nil {
					t.Fatal(err)
				}
				check("flush")
				model[string(w)], modelBytes = 1, len(w)
				continue
			}
			if err := add(m, w, c); err != nil {
				t.Fatal(err)
			}
			if _, ok := model[string(w)]; !ok {
				modelBytes += len(w)
			}
			model[string(w)]++
		}
		if len(c.got) != 0 {
			t.Fatalf("the table emitted %d words where the model does not flush", len(c.got))
		}
	}
	if err := m.Close(c); err != nil {
		t.Fatal(err)
	}
	check("close")
	if m.table.n != 0 || len(m.table.arena) != 0 {
		t.Fatalf("table not empty after Close: %d words", m.table.n)
	}
	t.Logf("%d words, %d flushes before Close", words, flushes)

	// Line by line through Map (the table's own hash) against the old
	// mapper: the same pairs once each flush is summed.
	sum := func(mp interface {
		job.Mapper
		job.Closer
	}) map[string]int64 {
		got := map[string]int64{}
		out := job.EmitterFunc(func(k, v []byte) error {
			n, _ := strconv.ParseInt(string(v), 10, 64)
			got[string(k)] += n
			return nil
		})
		for _, l := range lines {
			if err := mp.Map(nil, l, out); err != nil {
				t.Fatal(err)
			}
		}
		if err := mp.Close(out); err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := sum(&mapWordCountMapper{index: map[string]int{}})
	if got := sum(&wordCountMapper{table: newWCTable()}); !maps.Equal(got, want) {
		t.Fatalf("Map: %d words, the map mapper %d (or counts differ)", len(got), len(want))
	}
}

// add adds w alone, as Map does.
func add(m *wordCountMapper, w []byte, out job.Emitter) error {
	data, h := m.table.key(w, w)
	return m.add(w, data, h, out)
}

// TestWCTableCountOverflow: a word counted 2^32-1 times in one table is
// emitted with that count and counted on from 1, not wrapped to 0.
func TestWCTableCountOverflow(t *testing.T) {
	c := &collector{t: t, got: map[string]int64{}}
	m := &wordCountMapper{table: newWCTable()}
	if err := m.Map(nil, []byte("a b"), c); err != nil {
		t.Fatal(err)
	}
	a := []byte("a")
	data, h := m.table.key(a, a)
	i, found := m.table.find(a, data, h)
	if !found {
		t.Fatal("a not found")
	}
	m.table.slots[i].count = math.MaxUint32 - 1
	if err := m.Map(nil, []byte("a a a"), c); err != nil {
		t.Fatal(err)
	}
	if got := c.take(); !maps.Equal(got, map[string]int64{"a": math.MaxUint32}) {
		t.Fatalf("emitted before Close: %v", got)
	}
	if err := m.Close(c); err != nil {
		t.Fatal(err)
	}
	if got := c.take(); !maps.Equal(got, map[string]int64{"a": 2, "b": 1}) {
		t.Fatalf("Close: %v", got)
	}
}

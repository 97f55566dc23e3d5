package shuffle

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"
)

// wordKeys is a vocabulary of 5-10 byte words.
func wordKeys(rng *rand.Rand, n int) [][]byte {
	words := make([][]byte, n)
	for i := range words {
		w := make([]byte, 5+rng.IntN(6))
		for j := range w {
			w[j] = 'a' + byte(rng.IntN(26))
		}
		words[i] = w
	}
	return words
}

// BenchmarkMapWriterWordcount pushes 256 MB of wordcount-like pairs (5-10
// byte keys, value "1") through a MapWriter with the default buffer and 8
// partitions: emit, sort, spill, merge, write.
func BenchmarkMapWriterWordcount(b *testing.B) {
	benchMapWriter(b, nil, 256<<20)
}

// BenchmarkMapWriterWordcountCombine is the same with a summing combiner.
func BenchmarkMapWriterWordcountCombine(b *testing.B) {
	benchMapWriter(b, sumCombiner(), 256<<20)
}

// BenchmarkMapWriterWordcountNoSpill is emit, sort and write alone: 16 MB
// of wordcount pairs, which fit the default buffer.
func BenchmarkMapWriterWordcountNoSpill(b *testing.B) {
	benchMapWriter(b, nil, 16<<20)
}

func benchMapWriter(b *testing.B, combine CombineFunc, size int) {
	rng := rand.New(rand.NewPCG(1, 1))
	words := wordKeys(rng, 100000)
	// A text of 1M words, skewed toward the first ones as words are,
	// laid out in order as a mapper reading its input would emit them.
	// (Offsets, not slices: a heap of pointers would make the garbage
	// collector, not the writer, the subject of the benchmark.)
	var text []byte
	ends := make([]int32, 1<<20)
	for i := range ends {
		text = append(text, words[rng.IntN(len(words))*rng.IntN(len(words))/len(words)]...)
		ends[i] = int32(len(text))
	}
	words = nil
	one := []byte("1")
	part := hashPartition(8)
	dir := b.TempDir()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w, err := NewMapWriter(MapConfig{Dir: dir, Name: fmt.Sprint("m", i), Partitions: 8, Partition: part, Combine: combine})
		if err != nil {
			b.Fatal(err)
		}
		for n, j, start := 0, 0, int32(0); n < size; j++ {
			end := ends[j&(len(ends)-1)]
			if end < start {
				start = 0
			}
			k := text[start:end]
			start = end
			if err := w.Emit(k, one); err != nil {
				b.Fatal(err)
			}
			n += len(k) + 1
		}
		out, err := w.Close()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(w.Spills()), "spills")
		os.Remove(out.Data)
		os.Remove(out.Index)
	}
}

// BenchmarkMapWriterRandom pushes 128 MB of pairs with random 10-100 byte
// keys and 0-200 byte values.
func BenchmarkMapWriterRandom(b *testing.B) {
	rng := rand.New(rand.NewPCG(2, 2))
	pool := make([]byte, 1<<20+300)
	for i := range pool {
		pool[i] = byte(rng.Uint32())
	}
	const size = 128 << 20
	part := hashPartition(8)
	dir := b.TempDir()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w, err := NewMapWriter(MapConfig{Dir: dir, Name: fmt.Sprint("m", i), Partitions: 8, Partition: part})
		if err != nil {
			b.Fatal(err)
		}
		for n := 0; n < size; {
			o, kl, vl := rng.IntN(1<<20), 10+rng.IntN(91), rng.IntN(201)
			if err := w.Emit(pool[o:o+kl], pool[o+kl:o+kl+vl]); err != nil {
				b.Fatal(err)
			}
			n += kl + vl
		}
		out, err := w.Close()
		if err != nil {
			b.Fatal(err)
		}
		os.Remove(out.Data)
		os.Remove(out.Index)
	}
}

// BenchmarkSortBuffer sorts a 64 MiB buffer of wordcount pairs.
func BenchmarkSortBuffer(b *testing.B) {
	for _, parts := range []int{1, 8} {
		b.Run(fmt.Sprint(parts), func(b *testing.B) { benchSortBuffer(b, parts) })
	}
}

func benchSortBuffer(b *testing.B, parts int) {
	rng := rand.New(rand.NewPCG(3, 3))
	words := wordKeys(rng, 100000)
	w, err := NewMapWriter(MapConfig{Dir: b.TempDir(), Name: "m", Partitions: parts, Partition: hashPartition(parts)})
	if err != nil {
		b.Fatal(err)
	}
	for {
		k := words[rng.IntN(len(words))]
		if w.alen+recordLen(len(k), 1)+(w.n+1)*entrySize > w.cfg.BufferBytes {
			break
		}
		if err := w.Emit(k, []byte("1")); err != nil {
			b.Fatal(err)
		}
	}
	orig := slices.Clone(w.entries())
	b.SetBytes(w.Counters().MapOutputBytes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		es := w.entries()
		copy(es, orig)
		w.sorter.sort(es, w.mem[:w.alen])
	}
}

// BenchmarkMerge merges 16 sorted inputs of 4 MB each, wordcount-like,
// through Merge's group iteration.
func BenchmarkMerge(b *testing.B) {
	rng := rand.New(rand.NewPCG(4, 4))
	words := wordKeys(rng, 100000)
	const inputs, each = 16, 4 << 20
	var data [][]byte
	var total int64
	for range inputs {
		var ps []pair
		for n := 0; n < each; {
			k := words[rng.IntN(len(words))]
			ps = append(ps, pair{k, []byte("1")})
			n += len(k) + 1
		}
		slices.SortFunc(ps, cmpPair)
		enc := encode(ps)
		data = append(data, enc)
		total += int64(len(enc))
	}
	b.SetBytes(total)
	b.ReportAllocs()
	b.ResetTimer()
	readers := make([]io.Reader, inputs)
	brs := make([]bytes.Reader, inputs)
	for i := 0; i < b.N; i++ {
		for j := range readers {
			brs[j].Reset(data[j])
			readers[j] = &brs[j]
		}
		var vals int
		_, err := Merge(readers, b.TempDir(), func(key []byte, values ValueIter) error {
			for _, ok := values.Next(); ok; _, ok = values.Next() {
				vals++
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMapWriterTeraSort is a terasort map task's sort buffer: 1,000,000
// records of a 10-byte random key and a 90-byte value (one teragen part),
// 6 range partitions, the default 128 MiB buffer reused from one run to the
// next as the scheduler reuses it (no fresh pages): emit, then Close (sort
// and write, no spill). close-ms is Close's share.
func BenchmarkMapWriterTeraSort(b *testing.B) {
	rng := rand.New(rand.NewPCG(4, 4))
	const records = 1000000
	keys := make([]byte, 10*records)
	for i := range keys {
		keys[i] = byte(rng.Uint32())
	}
	value := bytes.Repeat([]byte("v"), 90)
	part := func(key []byte) int { return int(key[0]) * 6 / 256 }
	dir := b.TempDir()
	var buf []byte
	defer func() { FreeBuffer(buf) }()
	var closing time.Duration
	b.SetBytes(records * 100)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w, err := NewMapWriter(MapConfig{Dir: dir, Name: fmt.Sprint("m", i), Partitions: 6, Partition: part, Buffer: buf, KeepBuffer: true})
		if err != nil {
			b.Fatal(err)
		}
		for j := 0; j < records; j++ {
			if err := w.Emit(keys[10*j:10*j+10], value); err != nil {
				b.Fatal(err)
			}
		}
		start := time.Now()
		out, err := w.Close()
		if err != nil {
			b.Fatal(err)
		}
		closing += time.Since(start)
		if w.Spills() != 0 {
			b.Fatalf("%d spills: one part must fit the buffer", w.Spills())
		}
		buf = w.Buffer()
		os.Remove(out.Data)
		os.Remove(out.Index)
	}
	b.ReportMetric(float64(closing.Milliseconds())/float64(b.N), "close-ms")
}

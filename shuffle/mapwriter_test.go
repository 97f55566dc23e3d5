package shuffle

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func writeMap(t testing.TB, cfg MapConfig, pairs []pair) (MapOutput, *MapWriter) {
	t.Helper()
	w, err := NewMapWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pairs {
		if err := w.Emit(p.key, p.value); err != nil {
			t.Fatal(err)
		}
	}
	out, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return out, w
}

// expected sorts pairs by (partition, key, value).
func expected(pairs []pair, part PartitionFunc, n int) [][]pair {
	parts := make([][]pair, n)
	for _, p := range pairs {
		i := part(p.key)
		parts[i] = append(parts[i], p)
	}
	for _, ps := range parts {
		slices.SortFunc(ps, cmpPair)
	}
	return parts
}

func equalPairs(t *testing.T, what string, got, want []pair) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		if cmpPair(got[i], want[i]) != 0 {
			t.Fatalf("%s: record %d is (%q, %q), want (%q, %q)", what, i, got[i].key, got[i].value, want[i].key, want[i].value)
		}
	}
}

func TestMapWriterSpillsMatchInMemory(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pairs := randomPairs(rng, 20<<20, 20000)
	const parts = 7
	part := hashPartition(parts)
	dir := t.TempDir()

	small, ws := writeMap(t, MapConfig{Dir: filepath.Join(dir, "small"), Name: "m", Partitions: parts, Partition: part, BufferBytes: MinBufferBytes}, pairs)
	if ws.Spills() < 10 {
		t.Fatalf("%d spills with a 1 MiB buffer and 20 MB of pairs", ws.Spills())
	}
	want := expected(pairs, part, parts)
	got := readOutput(t, small)
	for p := range parts {
		equalPairs(t, fmt.Sprintf("partition %d", p), got[p], want[p])
	}
	c := ws.Counters()
	var bytesOut int64
	for _, p := range pairs {
		bytesOut += int64(len(p.key) + len(p.value))
	}
	if c.MapOutputRecords != int64(len(pairs)) || c.MapOutputBytes != bytesOut {
		t.Fatalf("counters %+v; want %d records, %d bytes", c, len(pairs), bytesOut)
	}
	// Every record is written once in a spill and once in the output.
	if c.SpilledRecords != 2*int64(len(pairs)) || c.CombineInputRecords != 0 || c.CombineOutputRecords != 0 {
		t.Fatalf("counters %+v", c)
	}

	big, wb := writeMap(t, MapConfig{Dir: filepath.Join(dir, "big"), Name: "m", Partitions: parts, Partition: part, BufferBytes: 256 << 20}, pairs)
	if wb.Spills() != 0 || wb.Counters().SpilledRecords != int64(len(pairs)) {
		t.Fatalf("%d spills, counters %+v with a huge buffer", wb.Spills(), wb.Counters())
	}
	for _, f := range [][2]string{{small.Data, big.Data}, {small.Index, big.Index}} {
		a, _ := os.ReadFile(f[0])
		b, _ := os.ReadFile(f[1])
		if !bytes.Equal(a, b) {
			t.Fatalf("%s and %s differ", f[0], f[1])
		}
	}
	// Only the output is left.
	if names := dirNames(t, filepath.Join(dir, "small")); !slices.Equal(names, []string{"m.data", "m.index"}) {
		t.Fatalf("files left: %v", names)
	}

	// Merging in passes gives the same output (on a quarter of the input,
	// for time).
	some := pairs[:len(pairs)/4]
	w, err := NewMapWriter(MapConfig{Dir: filepath.Join(dir, "passes"), Name: "m", Partitions: parts, Partition: part, BufferBytes: MinBufferBytes})
	if err != nil {
		t.Fatal(err)
	}
	w.fanIn = 3
	for _, p := range some {
		if err := w.Emit(p.key, p.value); err != nil {
			t.Fatal(err)
		}
	}
	passes, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	want = expected(some, part, parts)
	for p, got := range readOutput(t, passes) {
		equalPairs(t, fmt.Sprintf("in passes, partition %d", p), got, want[p])
	}
	if c := w.Counters(); c.SpilledRecords <= 2*int64(len(some)) {
		t.Fatalf("intermediate passes not counted: %+v", c)
	}
}

// sumCombiner adds decimal counts, allocating nothing.
func sumCombiner() CombineFunc {
	var buf []byte
	return func(key []byte, values ValueIter, emit func(key, value []byte) error) error {
		var sum int64
		for v, ok := values.Next(); ok; v, ok = values.Next() {
			if len(v) == 0 {
				return errors.New("empty count")
			}
			var n int64
			for _, c := range v {
				if c < '0' || c > '9' {
					return fmt.Errorf("bad count %q", v)
				}
				n = n*10 + int64(c-'0')
			}
			sum += n
		}
		buf = strconv.AppendInt(buf[:0], sum, 10)
		return emit(key, buf)
	}
}

func TestMapWriterCombiner(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	words := make([][]byte, 5000)
	for i := range words {
		words[i] = fmt.Appendf(nil, "w%0*d", 4+rng.IntN(6), i)
	}
	want := map[string]int64{}
	var pairs []pair
	for range 400000 {
		w := words[rng.IntN(len(words))]
		n := int64(1 + rng.IntN(3))
		want[string(w)] += n
		pairs = append(pairs, pair{w, strconv.AppendInt(nil, n, 10)})
	}
	const parts = 5
	part := hashPartition(parts)
	for _, c := range []struct{ buf, fanIn int }{{MinBufferBytes, MaxFanIn}, {MinBufferBytes, 3}, {64 << 20, MaxFanIn}} {
		buf := c.buf
		t.Run(fmt.Sprint(c.buf, "/", c.fanIn), func(t *testing.T) {
			w, err := NewMapWriter(MapConfig{Dir: t.TempDir(), Name: "m", Partitions: parts, Partition: part, Combine: sumCombiner(), BufferBytes: buf})
			if err != nil {
				t.Fatal(err)
			}
			w.fanIn = c.fanIn
			for _, p := range pairs {
				if err := w.Emit(p.key, p.value); err != nil {
					t.Fatal(err)
				}
			}
			out, err := w.Close()
			if err != nil {
				t.Fatal(err)
			}
			got := readOutput(t, out)
			var final int64
			seen := map[string]bool{}
			for p, ps := range got {
				for i, r := range ps {
					if part(r.key) != p {
						t.Fatalf("key %q in partition %d", r.key, p)
					}
					if i > 0 && bytes.Compare(ps[i-1].key, r.key) >= 0 {
						t.Fatalf("partition %d: %q after %q", p, r.key, ps[i-1].key)
					}
					n, _ := strconv.ParseInt(string(r.value), 10, 64)
					if n != want[string(r.key)] {
						t.Fatalf("%q: %d, want %d", r.key, n, want[string(r.key)])
					}
					seen[string(r.key)] = true
				}
				final += int64(len(ps))
			}
			if len(seen) != len(want) {
				t.Fatalf("%d keys, want %d", len(seen), len(want))
			}
			cs := w.Counters()
			t.Logf("%d spills, counters %+v", w.Spills(), cs)
			c := cs
			if buf == MinBufferBytes && w.Spills() < minCombine {
				t.Fatalf("only %d spills", w.Spills())
			}
			// Spills combine all map output; with 3 spills or more every
			// merge pass combines what it reads again.
			spilled := c.SpilledRecords - final
			if w.Spills() == 0 {
				spilled = 0
			}
			if c.CombineOutputRecords != c.SpilledRecords {
				t.Fatalf("counters %+v", c)
			}
			if w.fanIn == MaxFanIn && c.CombineInputRecords != c.MapOutputRecords+spilled {
				t.Fatalf("counters %+v, %d records in spills, %d in the output", c, spilled, final)
			}
		})
	}
}

func TestMapWriterCombinerOutput(t *testing.T) {
	// A combiner may emit several values, in any order: they are written
	// sorted. It may also emit nothing.
	spread := func(key []byte, values ValueIter, emit func(key, value []byte) error) error {
		if string(key) == "drop" {
			return nil
		}
		var vals []string
		for v, ok := values.Next(); ok; v, ok = values.Next() {
			vals = append(vals, string(v))
		}
		for i := len(vals) - 1; i >= 0; i-- {
			if err := emit(key, []byte(vals[i]+"!")); err != nil {
				return err
			}
		}
		return nil
	}
	pairs := []pair{{[]byte("b"), []byte("2")}, {[]byte("a"), []byte("1")}, {[]byte("b"), []byte("1")}, {[]byte("drop"), []byte("x")}, {[]byte("b"), []byte("3")}}
	out, w := writeMap(t, MapConfig{Dir: t.TempDir(), Name: "m", Partitions: 1, Combine: spread}, pairs)
	got := readOutput(t, out)[0]
	equalPairs(t, "output", got, []pair{{[]byte("a"), []byte("1!")}, {[]byte("b"), []byte("1!")}, {[]byte("b"), []byte("2!")}, {[]byte("b"), []byte("3!")}})
	if c := w.Counters(); c.CombineInputRecords != 5 || c.CombineOutputRecords != 4 || c.SpilledRecords != 4 {
		t.Fatalf("counters %+v", c)
	}

	// A combiner that changes the key fails the writer, which leaves nothing.
	dir := t.TempDir()
	w, err := NewMapWriter(MapConfig{Dir: dir, Name: "m", Partitions: 1, Combine: func(key []byte, values ValueIter, emit func(key, value []byte) error) error {
		return emit([]byte("other"), nil)
	}})
	if err != nil {
		t.Fatal(err)
	}
	w.Emit([]byte("k"), nil)
	if _, err := w.Close(); !errors.Is(err, ErrCombinerKey) {
		t.Fatalf("close: %v", err)
	}
	w.Abort()
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("files left: %v", names)
	}
}

func TestMapWriterAbort(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	pairs := randomPairs(rng, 4<<20, 1000)
	dir := t.TempDir()
	w, err := NewMapWriter(MapConfig{Dir: dir, Name: "m", Partitions: 3, Partition: hashPartition(3), BufferBytes: MinBufferBytes})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pairs {
		if err := w.Emit(p.key, p.value); err != nil {
			t.Fatal(err)
		}
	}
	if w.Spills() == 0 || len(dirNames(t, dir)) == 0 {
		t.Fatal("nothing spilled")
	}
	w.Abort()
	w.Abort()
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("files left after Abort: %v", names)
	}
	if err := w.Emit([]byte("k"), nil); err == nil {
		t.Fatal("emit after Abort")
	}
	if _, err := w.Close(); err == nil {
		t.Fatal("close after Abort")
	}

	// A combiner failing in the final merge fails Close, which removes
	// its files; Abort after it is safe.
	closing := false
	w, err = NewMapWriter(MapConfig{Dir: dir, Name: "m", Partitions: 3, Partition: hashPartition(3), BufferBytes: MinBufferBytes,
		Combine: func(key []byte, values ValueIter, emit func(key, value []byte) error) error {
			if closing {
				return errors.New("boom")
			}
			v, _ := values.Next()
			return emit(key, v)
		}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pairs {
		if err := w.Emit(p.key, p.value); err != nil {
			t.Fatal(err)
		}
	}
	closing = true
	if _, err := w.Close(); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("close: %v", err)
	}
	w.Abort()
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("files left after a failed Close: %v", names)
	}

	// After a successful Close, Abort keeps the output.
	out, w := writeMap(t, MapConfig{Dir: dir, Name: "m", Partitions: 1}, pairs[:10])
	w.Abort()
	if _, err := ReadIndex(out.Index); err != nil {
		t.Fatal(err)
	}
}

func TestMapWriterHugePairs(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	pairs := randomPairs(rng, 3<<20, 500)
	huge := bytes.Repeat([]byte("v"), 3<<20)
	half := bytes.Repeat([]byte("h"), MinBufferBytes/2+10) // just over the spill-alone bound
	at := len(pairs) / 2
	pairs = slices.Insert(pairs, at, pair{[]byte("huge"), huge}, pair{[]byte("halfkey"), half}, pair{bytes.Repeat([]byte("K"), 2<<20), []byte("big key")})
	const parts = 4
	part := hashPartition(parts)
	out, w := writeMap(t, MapConfig{Dir: t.TempDir(), Name: "m", Partitions: parts, Partition: part, BufferBytes: MinBufferBytes}, pairs)
	want := expected(pairs, part, parts)
	got := readOutput(t, out)
	for p := range parts {
		equalPairs(t, fmt.Sprintf("partition %d", p), got[p], want[p])
	}
	t.Logf("%d spills", w.Spills())

	// Alone, with nothing else: one spill, renamed into place.
	out, w = writeMap(t, MapConfig{Dir: t.TempDir(), Name: "m", Partitions: parts, Partition: part, BufferBytes: MinBufferBytes}, []pair{{[]byte("huge"), huge}})
	if w.Spills() != 1 {
		t.Fatalf("%d spills", w.Spills())
	}
	got = readOutput(t, out)
	equalPairs(t, "huge", got[part([]byte("huge"))], []pair{{[]byte("huge"), huge}})
}

func TestMapWriterEmpty(t *testing.T) {
	dir := t.TempDir()
	out, _ := writeMap(t, MapConfig{Dir: dir, Name: "m", Partitions: 3, Partition: hashPartition(3)}, nil)
	if len(out.Segments) != 3 {
		t.Fatalf("%d segments", len(out.Segments))
	}
	for _, s := range out.Segments {
		if s != (Segment{}) {
			t.Fatalf("segment %+v", s)
		}
	}
	readOutput(t, out)

	// Empty keys and values are pairs like any other.
	out, _ = writeMap(t, MapConfig{Dir: dir, Name: "e", Partitions: 1}, []pair{{nil, nil}, {nil, []byte("v")}, {[]byte("k"), nil}, {nil, nil}})
	equalPairs(t, "empties", readOutput(t, out)[0], []pair{{nil, nil}, {nil, nil}, {nil, []byte("v")}, {[]byte("k"), nil}})
}

func TestMapConfigValidation(t *testing.T) {
	dir := t.TempDir()
	for _, cfg := range []MapConfig{
		{Name: "m", Partitions: 1},
		{Dir: dir, Name: "../m", Partitions: 1},
		{Dir: dir, Name: "", Partitions: 1},
		{Dir: dir, Name: "m", Partitions: 0},
		{Dir: dir, Name: "m", Partitions: 2},
		{Dir: dir, Name: "m", Partitions: 1, BufferBytes: 1000},
		{Dir: dir, Name: "m", Partitions: MaxPartitions + 1, Partition: hashPartition(2)},
	} {
		if _, err := NewMapWriter(cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	w, err := NewMapWriter(MapConfig{Dir: dir, Name: "m", Partitions: 2, Partition: func([]byte) int { return 2 }})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Emit([]byte("k"), nil); err == nil {
		t.Fatal("partition out of range accepted")
	}
	w.Abort()
}

func TestSorterEdgeCases(t *testing.T) {
	// Keys that differ only past 8 or 16 bytes, or by trailing zero bytes,
	// inline and not, in buckets big enough for the radix passes: through
	// each path of the sort (one partition, up to 256, more).
	rng := rand.New(rand.NewPCG(9, 10))
	var pairs []pair
	for range 3 * wideRadix {
		k := []byte("same-prefix-")
		switch rng.IntN(4) {
		case 0:
			k = append(k, bytes.Repeat([]byte{0}, rng.IntN(12))...)
		case 1:
			k = k[:rng.IntN(len(k))]
			k = append(k, bytes.Repeat([]byte{0}, rng.IntN(12))...)
		default:
			k = append(k, byte(rng.IntN(3)), byte(rng.IntN(256)))
		}
		v := []byte{byte(rng.IntN(3))}
		if rng.IntN(3) == 0 {
			v = append(v, bytes.Repeat([]byte{1}, rng.IntN(20))...)
		}
		pairs = append(pairs, pair{k, v})
	}
	for _, parts := range []int{1, 7, 300} {
		part := hashPartition(parts)
		out, _ := writeMap(t, MapConfig{Dir: t.TempDir(), Name: "m", Partitions: parts, Partition: part, BufferBytes: 64 << 20}, pairs)
		want := expected(pairs, part, parts)
		for p, got := range readOutput(t, out) {
			equalPairs(t, fmt.Sprintf("%d partitions, partition %d", parts, p), got, want[p])
		}
	}
}

// TestMapWriterAllocBounded: what a writer allocates does not grow with
// its input.
func TestMapWriterAllocBounded(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	words := make([][]byte, 1000)
	for i := range words {
		words[i] = fmt.Appendf(nil, "word%d", rng.IntN(1e6))
	}
	alloc := func(size int) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		w, err := NewMapWriter(MapConfig{Dir: t.TempDir(), Name: "m", Partitions: 3, Partition: hashPartition(3), BufferBytes: 2 * MinBufferBytes})
		if err != nil {
			t.Fatal(err)
		}
		for n, i := 0, 0; n < size; i++ {
			k := words[i%len(words)]
			if err := w.Emit(k, k); err != nil {
				t.Fatal(err)
			}
			n += 2 * len(k)
		}
		if _, err := w.Close(); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	small, big := alloc(2<<20), alloc(20<<20)
	t.Logf("allocated %d KiB for 2 MB, %d KiB for 20 MB", small>>10, big>>10)
	if big > small+1<<20 || big > 8<<20 {
		t.Fatalf("allocated %d bytes for 2 MB and %d for 20 MB", small, big)
	}
}

// TestMapWritersConcurrent: writers share nothing (run with -race).
func TestMapWritersConcurrent(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	pairs := randomPairs(rng, 1<<20, 500)
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			w, err := NewMapWriter(MapConfig{Dir: t.TempDir(), Name: fmt.Sprint("m", i), Partitions: 2, Partition: hashPartition(2), BufferBytes: MinBufferBytes})
			if err == nil {
				for _, p := range pairs {
					if err = w.Emit(p.key, p.value); err != nil {
						break
					}
				}
			}
			if err == nil {
				_, err = w.Close()
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestMapWriterReusesBuffer: a writer given an earlier writer's sort
// buffer (full of that writer's records) writes the same output as a fresh
// one, spilling or not, with or without a combiner; an aborted writer's
// buffer is reusable too, and a buffer of the wrong size is not used.
func TestMapWriterReusesBuffer(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	first := randomPairs(rng, 3<<20, 500)
	second := randomPairs(rng, 3<<20, 3000)
	const parts = 5
	part := hashPartition(parts)
	dir := t.TempDir()
	for _, c := range []struct {
		name    string
		buffer  int
		combine CombineFunc
	}{
		{"fits", 16 << 20, nil},
		{"spills", MinBufferBytes, nil},
		{"combines", MinBufferBytes, sumCombiner()},
	} {
		cfg := func(name string) MapConfig {
			return MapConfig{Dir: filepath.Join(dir, c.name), Name: name, Partitions: parts, Partition: part, BufferBytes: c.buffer, Combine: c.combine, KeepBuffer: true}
		}
		before, pairs := first, second
		if c.combine != nil {
			before, pairs = countPairs(rng, 100000, 500), countPairs(rng, 200000, 3000)
		}
		fresh, w0 := writeMap(t, cfg("fresh"), pairs)
		FreeBuffer(w0.Buffer())
		_, w1 := writeMap(t, cfg("first"), before)
		buf := w1.Buffer()
		if len(buf) != c.buffer || w1.Buffer() != nil {
			t.Fatalf("%s: Buffer after Close gave %d bytes, then not nil", c.name, len(buf))
		}
		cf := cfg("reused")
		cf.Buffer = buf
		reused, w2 := writeMap(t, cf, pairs)
		for _, f := range [][2]string{{fresh.Data, reused.Data}, {fresh.Index, reused.Index}} {
			a, _ := os.ReadFile(f[0])
			b, _ := os.ReadFile(f[1])
			if !bytes.Equal(a, b) {
				t.Fatalf("%s: %s and %s differ", c.name, f[0], f[1])
			}
		}
		// Abort gives the buffer back too; a wrong size is not used.
		w3, err := NewMapWriter(MapConfig{Dir: filepath.Join(dir, c.name), Name: "aborted", Partitions: parts, Partition: part, BufferBytes: c.buffer, Buffer: w2.Buffer(), KeepBuffer: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(w3.mem) != c.buffer {
			t.Fatalf("%s: the buffer given was not used", c.name)
		}
		w3.Emit([]byte("k"), []byte("v"))
		if w3.Buffer() != nil {
			t.Fatalf("%s: Buffer before Close or Abort", c.name)
		}
		w3.Abort()
		w4, err := NewMapWriter(MapConfig{Dir: filepath.Join(dir, c.name), Name: "wrong", Partitions: parts, Partition: part, BufferBytes: 2 * c.buffer, Buffer: w3.Buffer(), KeepBuffer: true})
		if err != nil {
			t.Fatal(err)
		}
		if w4.mem != nil {
			t.Fatalf("%s: a buffer of the wrong size was used", c.name)
		}
		w4.Abort()
		if n := MappedBytes(); n != 0 {
			t.Fatalf("%s: %d bytes of sort buffers still mapped", c.name, n)
		}
	}
}

// countPairs makes n pairs of keys from a vocabulary with decimal counts,
// for sumCombiner.
func countPairs(rng *rand.Rand, n, vocab int) []pair {
	pairs := make([]pair, n)
	for i := range pairs {
		pairs[i] = pair{[]byte(fmt.Sprintf("word%d", rng.IntN(vocab))), []byte(fmt.Sprint(1 + rng.IntN(9)))}
	}
	return pairs
}

// TestSortBufferGrowth: the sort buffer grows fourfold from 1 MiB, and
// straight to its full size from half of it on, so the last growth never
// holds a buffer of half the full size or more beside the full one.
func TestSortBufferGrowth(t *testing.T) {
	for _, tt := range []struct {
		max  int
		want []int
	}{
		{128 << 20, []int{1 << 20, 4 << 20, 16 << 20, 128 << 20}},
		{96 << 20, []int{1 << 20, 4 << 20, 16 << 20, 96 << 20}},
		{64 << 20, []int{1 << 20, 4 << 20, 16 << 20, 64 << 20}},
		{3 << 20, []int{1 << 20, 3 << 20}},
		{MinBufferBytes, []int{MinBufferBytes}},
	} {
		w, err := NewMapWriter(MapConfig{Dir: t.TempDir(), Name: "m", Partitions: 1, BufferBytes: tt.max})
		if err != nil {
			t.Fatal(err)
		}
		var sizes []int
		val := make([]byte, 1000)
		for len(w.mem) < tt.max {
			if err := w.Emit([]byte("k"), val); err != nil {
				t.Fatal(err)
			}
			if len(sizes) == 0 || sizes[len(sizes)-1] != len(w.mem) {
				sizes = append(sizes, len(w.mem))
			}
		}
		w.Abort()
		if fmt.Sprint(sizes) != fmt.Sprint(tt.want) {
			t.Errorf("buffer of %d bytes grew as %v, want %v", tt.max, sizes, tt.want)
		}
	}
}

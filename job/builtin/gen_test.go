package builtin

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"testing"

	"shoal.dev/shoal/job"
)

func generate(t testing.TB, size int64, seed uint64) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := GenerateText(&b, size, seed); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestGenerateTextLengthAndShape(t *testing.T) {
	for _, size := range []int64{0, 1, 2, 3, 10, 100, 1000, genBufferSize - 1, genBufferSize, genBufferSize + 1, 1<<20 + 3} {
		out := generate(t, size, 42)
		if int64(len(out)) != size {
			t.Fatalf("size %d: wrote %d bytes", size, len(out))
		}
		if size == 0 {
			continue
		}
		if out[len(out)-1] != '\n' {
			t.Errorf("size %d: does not end in a newline", size)
		}
		lines := bytes.Split(out[:len(out)-1], []byte("\n"))
		for i, line := range lines {
			last := i == len(lines)-1
			if bytes.HasPrefix(line, []byte(" ")) || bytes.HasSuffix(line, []byte(" ")) || bytes.Contains(line, []byte("  ")) {
				t.Fatalf("size %d: line %d %q is badly spaced", size, i, line)
			}
			words := len(bytes.Fields(line))
			if words > maxLineWords || !last && words < minLineWords {
				t.Fatalf("size %d: line %d has %d words: %q", size, i, words, line)
			}
			for _, c := range line {
				if c != ' ' && (c < 'a' || c > 'z') {
					t.Fatalf("size %d: line %d holds byte %q", size, i, c)
				}
			}
		}
	}
}

func TestGenerateTextDeterministic(t *testing.T) {
	const size = 200_000
	a, b := generate(t, size, 7), generate(t, size, 7)
	if !bytes.Equal(a, b) {
		t.Fatal("same size and seed, different output")
	}
	if c := generate(t, size, 8); bytes.Equal(a, c) {
		t.Fatal("seeds 7 and 8 give the same output")
	}
	// A smaller size gives a prefix, but for its cut last line.
	for _, small := range []int64{1000, 65536, 100_001} {
		s := generate(t, small, 7)
		cut := bytes.LastIndexByte(s[:len(s)-1], '\n') + 1
		if !bytes.Equal(s[:cut], a[:cut]) {
			t.Errorf("size %d is not a prefix of size %d", small, size)
		}
	}
	// Pin the output: a change to the generator changes every demo and
	// benchmark corpus, so make it on purpose.
	if got, want := string(generate(t, 64, 1)), pinnedText; got != want {
		t.Errorf("GenerateText(64, 1) = %q, want %q", got, want)
	}
}

const pinnedText = "chaix of that is bis of an is sym frar be cot\nthe that of the t\n"

func TestGenerateTextZipf(t *testing.T) {
	out := generate(t, 4<<20, 3)
	counts := make(map[string]int)
	total := 0
	for _, w := range bytes.Fields(out) {
		counts[string(w)]++
		total++
	}
	// Rank 0 ("the") has probability 1/H, H = sum over 50,000 ranks of
	// (1+k)^-1.1; rank 1 ("of") 2^-1.1 as much.
	var h float64
	for k := range vocabularySize {
		h += math.Pow(1+float64(k), -zipfS)
	}
	for rank, w := range []string{"the", "of", "and"} {
		p := math.Pow(1+float64(rank), -zipfS) / h
		want := p * float64(total)
		if got := float64(counts[w]); math.Abs(got-want) > 5*math.Sqrt(want) {
			t.Errorf("%q: %v times in %d words, want about %.0f", w, got, total, want)
		}
	}
	if len(counts) < 20000 {
		t.Errorf("only %d distinct words: the tail is missing", len(counts))
	}
}

// TestZipfTableIsRandZipf checks the alias table's probabilities exactly
// against P(k) ∝ (1+k)^-s, the distribution of rand.NewZipf(r, s, 1, n-1),
// and compares draws with rand.Zipf's.
func TestZipfTableIsRandZipf(t *testing.T) {
	const n = vocabularySize
	table := newZipfTable(n, zipfS)
	got := make([]float64, n)
	for col, e := range table {
		keep := float64(e.prob) / (1 << 32)
		got[col] += keep
		got[e.alias] += 1 - keep
	}
	var h float64
	for k := range n {
		h += math.Pow(1+float64(k), -zipfS)
	}
	for k := range n {
		want := math.Pow(1+float64(k), -zipfS) / h * n
		if math.Abs(got[k]-want) > 1e-6*want+1e-9 {
			t.Fatalf("rank %d: table gives %g/n, want %g/n", k, got[k], want)
		}
	}

	const draws = 1 << 20
	rng := rand.New(rand.NewPCG(1, 2))
	zipf := rand.NewZipf(rng, zipfS, 1, n-1)
	var fromTable, fromZipf [8]int
	for range draws {
		if k := table.draw(rng.Uint64()); k < len(fromTable) {
			fromTable[k]++
		}
		if k := zipf.Uint64(); k < uint64(len(fromZipf)) {
			fromZipf[k]++
		}
	}
	for k := range fromTable {
		a, b := float64(fromTable[k]), float64(fromZipf[k])
		if math.Abs(a-b) > 6*math.Sqrt(a+b) {
			t.Errorf("rank %d: %v draws from the table, %v from rand.Zipf", k, a, b)
		}
	}
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after <= 0 {
		return 0, errors.New("disk full")
	}
	w.after--
	return len(p), nil
}

func TestGenerateTextErrors(t *testing.T) {
	if err := GenerateText(io.Discard, -1, 0); err == nil {
		t.Error("negative size: no error")
	}
	for _, size := range []int64{10, 1 << 20} {
		if err := GenerateText(&failWriter{after: 1}, size, 0); size > genBufferSize && err == nil {
			t.Errorf("size %d: write error not returned", size)
		}
		if err := GenerateText(&failWriter{}, size, 0); err == nil {
			t.Errorf("size %d: write error not returned", size)
		}
	}
}

func BenchmarkGenerateText(b *testing.B) {
	const size = 32 << 20
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if err := GenerateText(io.Discard, size, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWordCountMapper measures the wordcount mapper over 64 MiB of
// generated text (its table flushed at the end of each pass), emitting into
// a discarding Emitter. Sub-benchmark "map" is the mapper as it was, over a
// map[string]int (mapWordCountMapper), the baseline of "table", the mapper
// over its wcTable: with -count=N they run interleaved in one command.
func BenchmarkWordCountMapper(b *testing.B) {
	text := generate(b, 64<<20, 1)
	lines := bytes.Split(text, []byte("\n"))
	for _, c := range []struct {
		name string
		m    interface {
			job.Mapper
			job.Closer
		}
	}{
		{"map", &mapWordCountMapper{index: map[string]int{}}},
		{"table", &wordCountMapper{table: newWCTable()}},
	} {
		b.Run(c.name, func(b *testing.B) {
			out := &discard{}
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				for _, l := range lines {
					if err := c.m.Map(nil, l, out); err != nil {
						b.Fatal(err)
					}
				}
				if err := c.m.Close(out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package shuffle

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sortedInputs splits pairs at random into n sorted record streams, some
// empty.
func sortedInputs(rng *rand.Rand, pairs []pair, n int) [][]byte {
	parts := make([][]pair, n)
	for _, p := range pairs {
		i := rng.IntN(n)
		if i%7 == 3 {
			i = (i + 1) % n // leave some inputs empty
		}
		parts[i] = append(parts[i], p)
	}
	out := make([][]byte, n)
	for i, ps := range parts {
		slices.SortFunc(ps, cmpPair)
		out[i] = encode(ps)
	}
	return out
}

// collect merges and returns what fn saw, checking the grouping.
func collect(t *testing.T, merge func(fn func(key []byte, values ValueIter) error) (MergeStats, error)) ([]pair, MergeStats) {
	t.Helper()
	var got []pair
	var prev []byte
	st, err := merge(func(key []byte, values ValueIter) error {
		if prev != nil && bytes.Compare(prev, key) >= 0 {
			t.Fatalf("group %q after %q", key, prev)
		}
		prev = bytes.Clone(key)
		for v, ok := values.Next(); ok; v, ok = values.Next() {
			got = append(got, pair{bytes.Clone(key), bytes.Clone(v)})
		}
		if _, ok := values.Next(); ok {
			t.Fatal("values go on after the end")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, st
}

func TestMergeManyInputs(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	pairs := randomPairs(rng, 4<<20, 3000)
	want := slices.Clone(pairs)
	slices.SortFunc(want, cmpPair)
	groups := 0
	for i := range want {
		if i == 0 || !bytes.Equal(want[i].key, want[i-1].key) {
			groups++
		}
	}
	inputs := sortedInputs(rng, pairs, 150) // three passes: 24 runs, then 64, then the last 64

	// Readers: at most MaxFanIn of them are read from at once.
	tmp := t.TempDir()
	var open, maxOpen int
	readers := make([]io.Reader, len(inputs))
	for i, b := range inputs {
		readers[i] = &trackedReader{r: bytes.NewReader(b), open: &open, max: &maxOpen}
	}
	got, st := collect(t, func(fn func(key []byte, values ValueIter) error) (MergeStats, error) {
		return Merge(readers, tmp, fn)
	})
	equalPairs(t, "merge", got, want)
	if st.Records != int64(len(want)) || st.Groups != int64(groups) {
		t.Fatalf("stats %+v, want %d records in %d groups", st, len(want), groups)
	}
	if maxOpen > MaxFanIn {
		t.Fatalf("%d inputs read at once", maxOpen)
	}
	if names := dirNames(t, tmp); len(names) != 0 {
		t.Fatalf("temporary files left: %v", names)
	}

	// Files, opened by pass; errors name them.
	dir := t.TempDir()
	paths := make([]string, len(inputs))
	for i, b := range inputs {
		paths[i] = filepath.Join(dir, fmt.Sprintf("seg%03d", i))
		if err := os.WriteFile(paths[i], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, st = collect(t, func(fn func(key []byte, values ValueIter) error) (MergeStats, error) {
		return MergeFiles(paths, tmp, fn)
	})
	equalPairs(t, "merge files", got, want)
	if st.Records != int64(len(want)) {
		t.Fatalf("stats %+v", st)
	}
	if names := dirNames(t, tmp); len(names) != 0 {
		t.Fatalf("temporary files left: %v", names)
	}

	// Values fn leaves unread are skipped, and counted.
	st, err := Merge([]io.Reader{bytes.NewReader(inputs[0]), bytes.NewReader(inputs[1])}, tmp, func(key []byte, values ValueIter) error { return nil })
	if err != nil || st.Records == 0 || st.Groups == 0 {
		t.Fatalf("%+v %v", st, err)
	}
}

// trackedReader counts the readers that started and did not finish.
type trackedReader struct {
	r             io.Reader
	started, done bool
	open, max     *int
}

func (r *trackedReader) Read(p []byte) (int, error) {
	if !r.started {
		r.started = true
		*r.open++
		*r.max = max(*r.max, *r.open)
	}
	n, err := r.r.Read(p)
	if err == io.EOF && !r.done {
		r.done = true
		*r.open--
	}
	return n, err
}

func TestMergeEdgeCases(t *testing.T) {
	tmp := t.TempDir()
	never := func(key []byte, values ValueIter) error {
		t.Fatal("fn called")
		return nil
	}
	for _, inputs := range [][]io.Reader{nil, {bytes.NewReader(nil)}, {bytes.NewReader(nil), strings.NewReader("")}} {
		st, err := Merge(inputs, tmp, never)
		if err != nil || st != (MergeStats{}) {
			t.Fatalf("%d empty inputs: %+v %v", len(inputs), st, err)
		}
	}

	// Equal keys across inputs form one group with their values in order,
	// duplicates kept; the empty key is a key.
	a := encode([]pair{{nil, []byte("x")}, {[]byte("k"), []byte("1")}, {[]byte("k"), []byte("3")}})
	b := encode([]pair{{[]byte("k"), []byte("2")}, {[]byte("k"), []byte("3")}, {[]byte("z"), nil}})
	got, st := collect(t, func(fn func(key []byte, values ValueIter) error) (MergeStats, error) {
		return Merge([]io.Reader{bytes.NewReader(a), bytes.NewReader(b)}, tmp, fn)
	})
	equalPairs(t, "groups", got, []pair{{nil, []byte("x")}, {[]byte("k"), []byte("1")}, {[]byte("k"), []byte("2")}, {[]byte("k"), []byte("3")}, {[]byte("k"), []byte("3")}, {[]byte("z"), nil}})
	if st != (MergeStats{Groups: 3, Records: 6}) {
		t.Fatalf("stats %+v", st)
	}

	// fn's error stops the merge and comes back as is.
	boom := errors.New("boom")
	if _, err := Merge([]io.Reader{bytes.NewReader(a)}, tmp, func([]byte, ValueIter) error { return boom }); err != boom {
		t.Fatalf("fn error: %v", err)
	}
}

func TestMergeCorrupt(t *testing.T) {
	tmp := t.TempDir()
	ok := encode([]pair{{[]byte("a"), []byte("1")}, {[]byte("b"), []byte("2")}})
	truncated := ok[:len(ok)-1]
	unsorted := encode([]pair{{[]byte("b"), []byte("1")}, {[]byte("a"), []byte("2")}})
	for name, bad := range map[string][]byte{"truncated": truncated, "unsorted": unsorted, "garbage": {0xff, 0xff, 0xff}} {
		for _, n := range []int{3, MaxFanIn + 10} { // in the last pass, and in an intermediate one
			inputs := make([]io.Reader, n)
			for i := range inputs {
				inputs[i] = bytes.NewReader(ok)
			}
			inputs[2] = bytes.NewReader(bad)
			_, err := Merge(inputs, tmp, func(key []byte, values ValueIter) error {
				for _, ok := values.Next(); ok; _, ok = values.Next() {
				}
				return nil
			})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s among %d: %v", name, n, err)
			}
			if n == 3 && !strings.Contains(err.Error(), "input 2") {
				t.Fatalf("%s: error does not name the input: %v", name, err)
			}
			if names := dirNames(t, tmp); len(names) != 0 {
				t.Fatalf("temporary files left: %v", names)
			}
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.seg")
	os.WriteFile(path, truncated, 0o600)
	if _, err := MergeFiles([]string{path}, tmp, func([]byte, ValueIter) error { return nil }); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Fatalf("file: %v", err)
	}
	if _, err := MergeFiles([]string{filepath.Join(dir, "missing")}, tmp, func([]byte, ValueIter) error { return nil }); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestPassFactor(t *testing.T) {
	for _, c := range []struct{ n, fanIn, want int }{
		{10, 64, 10}, {64, 64, 64}, {65, 64, 2}, {100, 64, 37}, {127, 64, 64}, {150, 64, 24},
	} {
		if got := passFactor(c.n, c.fanIn, true); got != c.want {
			t.Errorf("passFactor(%d, %d) = %d, want %d", c.n, c.fanIn, got, c.want)
		}
	}
}

package shuffle

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"shoal.dev/shoal/disk"
)

// MaxFanIn is how many sorted runs one merge pass reads at once, on either
// side. Beyond it, merges go in passes through temporary files so that open
// files and buffers stay bounded.
const MaxFanIn = 64

// Buffer sizes of merges: one read buffer per input, one write buffer per
// intermediate run.
const (
	mergeReadBuffer  = 64 << 10
	mergeWriteBuffer = 1 << 20
)

// loserTree is a tournament tree over sorted record streams: the winner
// is the stream whose current record is smallest by (key, value), and
// advancing it costs one comparison per level.
type loserTree struct {
	rs      []*RecordReader
	tree    []int // tree[0] is the winner, tree[1:] the loser of each match
	win     []int // scratch for init
	records int64 // records popped
}

func (t *loserTree) reset(rs []*RecordReader) {
	t.rs = rs
	t.records = 0
}

// init reads every stream's first record and plays the tournament.
func (t *loserTree) init() error {
	k := len(t.rs)
	for _, r := range t.rs {
		if err := r.advance(); err != nil {
			return err
		}
	}
	if k == 0 {
		return nil
	}
	t.tree = slicesResize(t.tree, k)
	t.win = slicesResize(t.win, 2*k)
	for i := range k {
		t.win[k+i] = i
	}
	for n := k - 1; n >= 1; n-- {
		a, b := t.win[2*n], t.win[2*n+1]
		if t.less(b, a) {
			a, b = b, a
		}
		t.win[n], t.tree[n] = a, b
	}
	if k == 1 {
		t.tree[0] = 0
	} else {
		t.tree[0] = t.win[1]
	}
	return nil
}

func slicesResize(s []int, n int) []int {
	if cap(s) < n {
		return make([]int, n)
	}
	return s[:n]
}

// less orders streams by their current records; a finished stream is
// larger than any record.
func (t *loserTree) less(i, j int) bool {
	a, b := t.rs[i], t.rs[j]
	if a.done || b.done {
		return !a.done
	}
	if a.pfx != b.pfx {
		return a.pfx < b.pfx
	}
	var c int
	if len(a.key) <= 8 && len(b.key) <= 8 {
		c = len(a.key) - len(b.key) // the prefixes are the keys, zero-padded
	} else {
		c = bytes.Compare(a.key, b.key)
	}
	if c == 0 {
		if c = bytes.Compare(a.value, b.value); c == 0 {
			return i < j
		}
	}
	return c < 0
}

// top is the stream holding the smallest record, or nil when all are done.
func (t *loserTree) top() *RecordReader {
	if len(t.rs) == 0 {
		return nil
	}
	r := t.rs[t.tree[0]]
	if r.done {
		return nil
	}
	return r
}

// pop consumes the smallest record.
func (t *loserTree) pop() error {
	w := t.tree[0]
	t.records++
	if err := t.rs[w].advance(); err != nil {
		return err
	}
	for n := (w + len(t.rs)) >> 1; n >= 1; n >>= 1 {
		if t.less(t.tree[n], w) {
			t.tree[n], w = w, t.tree[n]
		}
	}
	t.tree[0] = w
	return nil
}

// merger walks a loser tree by key groups. It is the ValueIter of the
// current group.
type merger struct {
	t        *loserTree
	key      []byte // the current group's key (a copy)
	started  bool
	inGroup  bool  // the group may have values left
	consumed bool  // Next returned the top record: pop it before going on
	values   int64 // records of the current group seen so far
	err      error
}

func (m *merger) reset(t *loserTree) {
	m.t, m.started, m.inGroup, m.consumed, m.err = t, false, false, false, nil
}

// nextGroup skips what is left of the current group and starts the next;
// it returns false at the end or on an error (in m.err).
func (m *merger) nextGroup() bool {
	for m.inGroup {
		m.Next()
	}
	if m.err != nil {
		return false
	}
	if m.consumed {
		if err := m.t.pop(); err != nil {
			m.err = err
			return false
		}
		m.consumed = false
	}
	r := m.t.top()
	if r == nil {
		return false
	}
	if m.started && bytes.Compare(r.key, m.key) < 0 {
		m.err = r.corrupt(fmt.Sprintf("key %s follows key %s: input not sorted", quote(r.key), quote(m.key)))
		return false
	}
	m.key = append(m.key[:0], r.key...)
	m.started, m.inGroup, m.values = true, true, 0
	return true
}

// Next returns the group's next value.
func (m *merger) Next() ([]byte, bool) {
	if !m.inGroup {
		return nil, false
	}
	if m.consumed {
		m.consumed = false
		if err := m.t.pop(); err != nil {
			m.err, m.inGroup = err, false
			return nil, false
		}
		if r := m.t.top(); r == nil || !bytes.Equal(r.key, m.key) {
			m.inGroup = false
			return nil, false
		}
	}
	m.consumed = true
	m.values++
	return m.t.top().value, true
}

// MergeStats counts what a Merge fed its callback.
type MergeStats struct {
	Groups  int64 // key groups (calls of fn)
	Records int64 // records, whether fn read their values or not
}

// Merge merges sorted record streams: each input is a sequence of records
// sorted by key then value, such as map output segments. It calls fn once
// per key group, in key order, with the group's values in value order; key
// and values are valid only during the call, fn must not keep values
// after returning, and values fn does not read are skipped. fn's error
// stops the merge and is returned as is.
//
// With more than MaxFanIn inputs, Merge first merges some of them into
// temporary files in tmpDir (os.TempDir() if empty), which it removes, and
// it reads only the inputs of the pass it is running. It never closes
// inputs. A malformed or truncated input, or keys out of order, give an
// error wrapping ErrCorrupt that names the input ("input 3") and the
// offset.
func Merge(inputs []io.Reader, tmpDir string, fn func(key []byte, values ValueIter) error) (MergeStats, error) {
	return MergeGuarded(inputs, tmpDir, nil, fn)
}

// MergeGuarded is Merge whose intermediate files are written through g:
// a write that would cross the node's reserve, or meets ENOSPC, fails the
// merge with a *disk.FullError (and the files are removed).
func MergeGuarded(inputs []io.Reader, tmpDir string, g *disk.Guard, fn func(key []byte, values ValueIter) error) (MergeStats, error) {
	srcs := make([]source, len(inputs))
	for i, r := range inputs {
		srcs[i] = source{name: fmt.Sprintf("input %d", i), r: r}
	}
	return merge(srcs, tmpDir, g, fn)
}

// MergeFiles is Merge over files, opened when their pass runs and closed
// after it; errors name the files.
func MergeFiles(paths []string, tmpDir string, fn func(key []byte, values ValueIter) error) (MergeStats, error) {
	srcs := make([]source, len(paths))
	for i, p := range paths {
		srcs[i] = source{name: p, path: p}
	}
	return merge(srcs, tmpDir, nil, fn)
}

// source is one input of a merge: a reader, or a file to open.
type source struct {
	name string
	r    io.Reader
	path string
	temp bool // a run of ours: removed once merged
}

// passFactor is how many of n runs the next pass merges: the first pass
// takes just enough that every later pass, the last one included, reads
// fanIn runs (Hadoop's Merger.getPassFactor).
func passFactor(n, fanIn int, first bool) int {
	if !first || n <= fanIn {
		return min(n, fanIn)
	}
	if mod := (n - 1) % (fanIn - 1); mod != 0 {
		return mod + 1
	}
	return fanIn
}

func merge(srcs []source, tmpDir string, g *disk.Guard, fn func(key []byte, values ValueIter) error) (st MergeStats, err error) {
	var temps []string
	defer func() {
		for _, p := range temps {
			os.Remove(p)
		}
	}()
	var bufs [][]byte
	var wbuf []byte
	t := &loserTree{}
	for first := true; len(srcs) > MaxFanIn; first = false {
		k := passFactor(len(srcs), MaxFanIn, first)
		if wbuf == nil {
			wbuf = make([]byte, mergeWriteBuffer)
		}
		f, err := os.CreateTemp(tmpDir, "shuffle-merge-*.run")
		if err != nil {
			return st, diskError(g, err, tmpDir, "merge")
		}
		temps = append(temps, f.Name())
		err = mergePass(t, srcs[:k], &bufs, g.Writer(f, tmpDir), wbuf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return st, diskError(g, err, tmpDir, "merge")
		}
		for _, s := range srcs[:k] {
			if s.temp {
				os.Remove(s.path)
			}
		}
		srcs = append(srcs[k:], source{name: "merge run " + f.Name(), path: f.Name(), temp: true})
	}
	rs, closeAll, err := openSources(srcs, &bufs)
	if err != nil {
		return st, fmt.Errorf("merge: %w", err)
	}
	defer closeAll()
	t.reset(rs)
	if err := t.init(); err != nil {
		return st, fmt.Errorf("merge: %w", err)
	}
	m := &merger{}
	m.reset(t)
	for m.nextGroup() {
		st.Groups++
		if err := fn(m.key, m); err != nil {
			st.Records = t.records
			return st, err
		}
	}
	st.Records = t.records
	if m.err != nil {
		return st, fmt.Errorf("merge: %w", m.err)
	}
	return st, nil
}

// mergePass merges srcs record by record into w.
func mergePass(t *loserTree, srcs []source, bufs *[][]byte, w io.Writer, wbuf []byte) error {
	rs, closeAll, err := openSources(srcs, bufs)
	if err != nil {
		return err
	}
	defer closeAll()
	t.reset(rs)
	if err := t.init(); err != nil {
		return err
	}
	out := newRecordWriterBuf(w, wbuf, false)
	for r := t.top(); r != nil; r = t.top() {
		if err := out.writeRaw(r.rec); err != nil {
			return err
		}
		if err := t.pop(); err != nil {
			return err
		}
	}
	return out.Flush()
}

// openSources makes a reader per source, with buffers from bufs (grown as
// needed and reused across passes). closeAll closes the files it opened.
func openSources(srcs []source, bufs *[][]byte) (rs []*RecordReader, closeAll func(), err error) {
	var files []*os.File
	closeAll = func() {
		for _, f := range files {
			f.Close()
		}
	}
	for len(*bufs) < len(srcs) {
		*bufs = append(*bufs, make([]byte, mergeReadBuffer))
	}
	rs = make([]*RecordReader, len(srcs))
	for i, s := range srcs {
		r := s.r
		if r == nil {
			f, err := os.Open(s.path)
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			files = append(files, f)
			r = f
		}
		rs[i] = newRecordReaderBuf(r, s.name, (*bufs)[i])
	}
	return rs, closeAll, nil
}

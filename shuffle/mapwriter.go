package shuffle

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"unsafe"

	"shoal.dev/shoal/disk"
)

// Sort buffer sizes.
const (
	// DefaultBufferBytes is MapConfig.BufferBytes's default: it holds
	// the 1,000,000 100-byte records of one of teragen's 100 MB parts with
	// their index entries (133 MB), so that a terasort map task sorts
	// once and writes its output once, without a spill and a merge (as
	// Hadoop's default sort buffer of 100 MB holds 100 MB of records).
	DefaultBufferBytes = 128 << 20
	// MinBufferBytes is the smallest sort buffer.
	MinBufferBytes = 1 << 20
	// MaxBufferBytes is the largest: entries address it with 32 bits.
	MaxBufferBytes = 2 << 30
)

const (
	initialBuffer = 1 << 20   // the sort buffer starts this big and doubles
	spillBuffer   = 512 << 10 // write buffer of spills and the output
	minReadBuffer = 16 << 10  // smallest read buffer carved from the sort buffer
	maxReadBuffer = 4 << 20   // largest one
	minCombine    = 3         // merges combine from this many spills on
)

// MapConfig configures a MapWriter. It is not modified after NewMapWriter.
type MapConfig struct {
	// Dir holds spill files and the final output; created if missing.
	Dir string
	// Name names the output: Dir/Name.data and Dir/Name.index. It must be
	// [A-Za-z0-9._-]+ (see ErrInvalidName). One writer per name at a time.
	Name string
	// Partitions is the number of partitions, 1 to MaxPartitions.
	Partitions int
	// Partition maps a key to its partition; it may be nil when
	// Partitions is 1.
	Partition PartitionFunc
	// Combine, optional, combines each key group of every sorted spill,
	// of the output when nothing spilled, and of every merge of at least
	// 3 spills.
	Combine CombineFunc
	// BufferBytes bounds the sort buffer (records and their 32-byte
	// index entries, which hold records of up to 16 bytes): when it is full the buffer is sorted, combined and
	// spilled. Default DefaultBufferBytes; MinBufferBytes to
	// MaxBufferBytes. It is allocated as needed, from 1 MiB growing
	// fourfold, and to BufferBytes once that reaches half of it.
	BufferBytes int
	// Buffer, optional, is a sort buffer to use instead of allocating
	// one: a MapWriter's Buffer after its Close or Abort, handed to the
	// next writer so that a node's map tasks reuse their sort buffers
	// (no growth copies, no fresh pages to fault in). It is used when it
	// is exactly BufferBytes long (rounded down to a multiple of 32);
	// the writer owns it from NewMapWriter on (also when that fails).
	Buffer []byte
	// KeepBuffer: Close and Abort keep the full-size sort buffer for
	// Buffer, and whoever takes it must give it to another writer or
	// FreeBuffer it. Without KeepBuffer they free it (a buffer mapped
	// outside the heap is unmapped then; see FreeBuffer).
	KeepBuffer bool
	// Guard admits every write of spills, merges and the output against
	// the node's reserve, and reports ENOSPC as a *disk.FullError. Nil
	// admits all (ENOSPC is still reported so).
	Guard *disk.Guard
}

func (c *MapConfig) validate() error {
	if c.Dir == "" {
		return errors.New("map writer: no directory")
	}
	if err := checkName("map output name", c.Name); err != nil {
		return fmt.Errorf("map writer: %w", err)
	}
	if c.Partitions < 1 || c.Partitions > MaxPartitions {
		return fmt.Errorf("map writer: %d partitions, want 1 to %d", c.Partitions, MaxPartitions)
	}
	if c.Partition == nil {
		if c.Partitions != 1 {
			return errors.New("map writer: no partition function")
		}
		c.Partition = func([]byte) int { return 0 }
	}
	switch {
	case c.BufferBytes == 0:
		c.BufferBytes = DefaultBufferBytes
	case c.BufferBytes < MinBufferBytes || c.BufferBytes > MaxBufferBytes:
		return fmt.Errorf("map writer: sort buffer of %d bytes, want %d to %d", c.BufferBytes, MinBufferBytes, MaxBufferBytes)
	}
	c.BufferBytes &^= entrySize - 1
	return nil
}

// MapWriter is a map task's output: it partitions, sorts, combines and
// spills the pairs it is given, and merges them at Close into one data
// file with an index of its partitions. Memory stays within about
// BufferBytes plus a few MiB of I/O buffers whatever the input size.
// It is not safe for concurrent use.
type MapWriter struct {
	cfg MapConfig

	// The sort buffer: records from the front (mem[:alen]), their
	// entries from the back, n of them, the newest lowest.
	mem   []byte
	alen  int
	n     int
	alone int // records longer than this are spilled on their own

	sorter *sorter
	wbuf   []byte // write buffer of spills and output
	spills []*run
	nspill int

	// Combining.
	emitFn func(key, value []byte) error // w.combineEmit, made once
	iter   runIter
	merger merger
	ckey   []byte // the group's key
	cvals  []byte // values the combiner emitted for it
	cspans []span
	spanFn func(a, b span) int // w.cmpSpan, made once

	spare     []byte   // the sort buffer once closed, for Buffer
	files     []string // files to remove on failure
	counters  Counters
	fanIn     int
	err       error // sticky
	closed    bool
	committed bool
}

// run is a sorted, partitioned file: a spill or an intermediate merge.
type run struct {
	path string
	segs []Segment
}

type span struct{ start, end int }

// NewMapWriter checks cfg, fills its defaults and creates cfg.Dir.
func NewMapWriter(cfg MapConfig) (*MapWriter, error) {
	if err := cfg.validate(); err != nil {
		FreeBuffer(cfg.Buffer)
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		FreeBuffer(cfg.Buffer)
		return nil, fmt.Errorf("map writer: %w", err)
	}
	w := &MapWriter{
		cfg:    cfg,
		alone:  cfg.BufferBytes / 2,
		sorter: newSorter(cfg.Partitions),
		fanIn:  MaxFanIn,
	}
	if len(cfg.Buffer) == cfg.BufferBytes && uintptr(unsafe.Pointer(unsafe.SliceData(cfg.Buffer)))%8 == 0 {
		w.mem = cfg.Buffer
	} else {
		FreeBuffer(cfg.Buffer)
	}
	w.cfg.Buffer = nil
	w.emitFn = w.combineEmit
	w.spanFn = w.cmpSpan
	return w, nil
}

// Buffer returns, once the writer is closed or aborted, its sort buffer
// if it grew to its full size and MapConfig.KeepBuffer is set, for
// another writer's MapConfig.Buffer or FreeBuffer; else nil. The writer
// no longer uses it.
func (w *MapWriter) Buffer() []byte {
	if !w.closed {
		return nil
	}
	b := w.spare
	w.spare = nil
	return b
}

var errClosed = errors.New("map writer is closed")

// Emit adds one pair. It copies key and value. A partition function
// result out of range is an error; so is any failure to spill, which is
// sticky.
func (w *MapWriter) Emit(key, value []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errClosed
	}
	p := w.cfg.Partition(key)
	if uint(p) >= uint(w.cfg.Partitions) {
		return fmt.Errorf("partition function put key %s in partition %d of %d", quote(key), p, w.cfg.Partitions)
	}
	n := recordLen(len(key), len(value))
	if n > MaxRecordBytes {
		return fmt.Errorf("record of %d bytes exceeds the limit of %d", n, MaxRecordBytes)
	}
	w.counters.MapOutputRecords++
	w.counters.MapOutputBytes += int64(len(key) + len(value))
	if n > w.alone {
		if err := w.spillAlone(p, key, value); err != nil {
			w.err = diskError(w.cfg.Guard, err, w.cfg.Dir, "map writer: spill")
			return w.err
		}
		return nil
	}
	if n <= inlineMax {
		if w.alen+(w.n+1)*entrySize > len(w.mem) {
			if err := w.makeRoom(0); err != nil {
				w.err = diskError(w.cfg.Guard, err, w.cfg.Dir, "map writer: spill")
				return w.err
			}
		}
		w.n++
		e := (*entry)(unsafe.Pointer(&w.mem[len(w.mem)-w.n*entrySize]))
		putRecord(e.data[:n], key, value)
		clear(e.data[n:]) // so that equal records have equal data
		// n <= 16: the header is 2 bytes, and 8 bytes from the key's
		// start are within data.
		e.prefix, e.tag = arenaWindow(e.data[:], 2, len(key), 0)
		e.tag |= uint32(p)<<tagPartShift | tagInline
		return nil
	}
	if w.alen+n+(w.n+1)*entrySize > len(w.mem) {
		if err := w.makeRoom(n); err != nil {
			w.err = diskError(w.cfg.Guard, err, w.cfg.Dir, "map writer: spill")
			return w.err
		}
	}
	off := w.alen
	putRecord(w.mem[off:off+n], key, value)
	w.alen = off + n
	w.n++
	e := (*entry)(unsafe.Pointer(&w.mem[len(w.mem)-w.n*entrySize]))
	e.prefix, e.tag = arenaWindow(w.mem[:len(w.mem)-w.n*entrySize], off+n-len(key)-len(value), len(key), 0)
	e.off = uint32(off)
	e.tag |= uint32(p) << tagPartShift
	return nil
}

// entries is the sort buffer's index. mem is 8-byte aligned (see
// alignedBytes) and its length a multiple of entrySize, so the view is
// aligned.
func (w *MapWriter) entries() []entry {
	if w.n == 0 {
		return nil
	}
	return unsafe.Slice((*entry)(unsafe.Pointer(&w.mem[len(w.mem)-w.n*entrySize])), w.n)
}

// alignedBytes allocates n bytes (a multiple of 8) aligned for entries,
// in huge pages where the kernel has them (adviseHuge).
func alignedBytes(n int) []byte {
	u := make([]uint64, n/8)
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(u))), n)
	adviseHuge(b)
	return b
}

// makeRoom grows or spills the sort buffer until an n-byte record fits.
func (w *MapWriter) makeRoom(n int) error {
	for w.alen+n+(w.n+1)*entrySize > len(w.mem) {
		if len(w.mem) < w.cfg.BufferBytes {
			size := max(len(w.mem), min(initialBuffer, w.cfg.BufferBytes))
			for size < w.alen+n+(w.n+1)*entrySize && size < w.cfg.BufferBytes {
				size = w.grown(size)
			}
			if size == len(w.mem) {
				size = w.grown(size)
			}
			var mem []byte
			if size == w.cfg.BufferBytes {
				mem = newSortBuffer(size) // never replaced: the writer frees it
			} else {
				mem = alignedBytes(size)
			}
			copy(mem, w.mem[:w.alen])
			copy(mem[size-w.n*entrySize:], w.mem[len(w.mem)-w.n*entrySize:])
			w.mem = mem
			continue
		}
		if err := w.spill(); err != nil {
			return err
		}
	}
	return nil
}

// grown is the size the sort buffer grows to from size: fourfold, or
// straight to BufferBytes from half of it on, so that the last growth
// does not hold a buffer half as big as the full one beside it.
func (w *MapWriter) grown(size int) int {
	if 4*size >= w.cfg.BufferBytes/2 {
		return w.cfg.BufferBytes
	}
	return 4 * size
}

// createTemp creates a file of ours in Dir, to remove on failure.
func (w *MapWriter) createTemp(suffix string) (*os.File, error) {
	f, err := os.CreateTemp(w.cfg.Dir, w.cfg.Name+".*"+suffix)
	if err != nil {
		return nil, err
	}
	w.files = append(w.files, f.Name())
	return f, nil
}

func (w *MapWriter) newSegWriter(f *os.File) *segWriter {
	if w.wbuf == nil {
		w.wbuf = make([]byte, spillBuffer)
	}
	return &segWriter{RecordWriter: newRecordWriterBuf(w.cfg.Guard.Writer(f, w.cfg.Dir), w.wbuf, true)}
}

// spill writes the sort buffer as a run and empties it.
func (w *MapWriter) spill() error {
	if err := w.writeRun(w.writeBuffer); err != nil {
		return err
	}
	w.alen, w.n = 0, 0
	return nil
}

// spillAlone writes one record, too long for the buffer, as a run.
func (w *MapWriter) spillAlone(p int, key, value []byte) error {
	return w.writeRun(func(out *segWriter) error {
		for i := range w.cfg.Partitions {
			if i == p {
				if err := out.Write(key, value); err != nil {
					return err
				}
			}
			out.endSegment()
		}
		return nil
	})
}

// writeRun writes a spill run with fill and adds it to the runs to merge.
func (w *MapWriter) writeRun(fill func(out *segWriter) error) error {
	f, err := w.createTemp(".spill")
	if err != nil {
		return err
	}
	out := w.newSegWriter(f)
	err = fill(out)
	if err == nil {
		err = out.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	w.spills = append(w.spills, &run{path: f.Name(), segs: out.segs})
	w.nspill++
	w.counters.SpilledRecords += out.records
	w.counters.SpilledBytes += out.n
	return nil
}

// writeBuffer sorts the sort buffer and writes it to out, one segment per
// partition, combined if there is a combiner.
func (w *MapWriter) writeBuffer(out *segWriter) error {
	es := w.entries()
	arena := w.mem[:w.alen]
	bounds := w.sorter.sort(es, arena)
	for p := range w.cfg.Partitions {
		part := es[bounds[p]:bounds[p+1]]
		if w.cfg.Combine == nil {
			if err := writeGathered(out, arena, part); err != nil {
				return err
			}
		} else if err := w.combineSorted(out, arena, part); err != nil {
			return err
		}
		out.endSegment()
	}
	return nil
}

// gatherBatch is how many records writeGathered looks up before it
// copies them.
const gatherBatch = 16

// writeGathered writes the records of the sorted entries es to out, in
// order. Sorted, the records sit at random places of the arena (a
// terasort map's 128 MiB), so each is a cache miss; copied one by one,
// each copy waited for its miss before the next began (about 170 ns a
// record on the bench VM, more than the sort). So it goes in batches:
// first it reads every record's header and last byte, loads that do not
// depend on each other, so that their misses overlap; then it copies the
// batch's records, now in cache.
func writeGathered(out *segWriter, arena []byte, es []entry) error {
	var lens [gatherBatch]int
	var sink byte
	for len(es) > 0 {
		batch := es[:min(gatherBatch, len(es))]
		for i := range batch {
			rec := recordOf(arena, &batch[i])
			h, kl, vl := decodeHeader(rec)
			lens[i] = h + kl + vl
			sink ^= rec[lens[i]-1]
		}
		for i := range batch {
			if err := out.writeRaw(recordOf(arena, &batch[i])[:lens[i]]); err != nil {
				return err
			}
		}
		es = es[len(batch):]
	}
	out.sink ^= sink
	return nil
}

// combineSorted combines sorted entries group by group into out.
func (w *MapWriter) combineSorted(out *segWriter, arena []byte, es []entry) error {
	for i := 0; i < len(es); {
		key, _, _ := decodeRecord(recordOf(arena, &es[i]))
		j := i + 1
		for j < len(es) {
			k, _, _ := decodeRecord(recordOf(arena, &es[j]))
			if !bytes.Equal(k, key) {
				break
			}
			j++
		}
		w.iter = runIter{arena: arena, es: es[i:j]}
		w.counters.CombineInputRecords += int64(j - i)
		if err := w.combine(out, key, &w.iter); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// runIter iterates the values of a group of sorted entries.
type runIter struct {
	arena []byte
	es    []entry
}

func (it *runIter) Next() ([]byte, bool) {
	if len(it.es) == 0 {
		return nil, false
	}
	_, v, _ := decodeRecord(recordOf(it.arena, &it.es[0]))
	it.es = it.es[1:]
	return v, true
}

// combine runs the combiner on one group and writes what it emits, sorted
// by value.
func (w *MapWriter) combine(out *segWriter, key []byte, values ValueIter) error {
	w.ckey, w.cvals, w.cspans = key, w.cvals[:0], w.cspans[:0]
	if err := w.cfg.Combine(key, values, w.emitFn); err != nil {
		return fmt.Errorf("combiner: %w", err)
	}
	if len(w.cspans) > 1 {
		slices.SortFunc(w.cspans, w.spanFn)
	}
	for _, s := range w.cspans {
		if err := out.Write(key, w.cvals[s.start:s.end]); err != nil {
			return err
		}
	}
	w.counters.CombineOutputRecords += int64(len(w.cspans))
	return nil
}

func (w *MapWriter) combineEmit(key, value []byte) error {
	if !bytes.Equal(key, w.ckey) {
		return fmt.Errorf("key %s emitted for group %s: %w", quote(key), quote(w.ckey), ErrCombinerKey)
	}
	start := len(w.cvals)
	w.cvals = append(w.cvals, value...)
	w.cspans = append(w.cspans, span{start, len(w.cvals)})
	return nil
}

func (w *MapWriter) cmpSpan(a, b span) int {
	return bytes.Compare(w.cvals[a.start:a.end], w.cvals[b.start:b.end])
}

// Close writes the output: the sort buffer straight to the data file when
// nothing spilled, else a k-way merge of the spills (in passes of at most
// MaxFanIn). The data file and index are synced and renamed into place,
// the index last; spills are removed. On an error Close removes what it
// wrote. Close may be called once.
func (w *MapWriter) Close() (MapOutput, error) {
	if w.closed {
		return MapOutput{}, errClosed
	}
	w.closed = true
	out, err := w.close()
	w.release()
	if err != nil {
		w.removeFiles()
		w.err = diskError(w.cfg.Guard, err, w.cfg.Dir, "map writer")
		return MapOutput{}, w.err
	}
	w.committed = true
	return out, nil
}

func (w *MapWriter) close() (MapOutput, error) {
	if w.err != nil {
		return MapOutput{}, w.err
	}
	var data string
	var segs []Segment
	if len(w.spills) == 0 {
		f, err := w.createTemp(".data.tmp")
		if err != nil {
			return MapOutput{}, err
		}
		out := w.newSegWriter(f)
		err = w.writeBuffer(out)
		if err == nil {
			err = out.Flush()
		}
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return MapOutput{}, err
		}
		w.counters.SpilledRecords += out.records
		w.counters.SpilledBytes += out.n
		data, segs = f.Name(), out.segs
	} else {
		if w.n > 0 {
			if err := w.spill(); err != nil {
				return MapOutput{}, err
			}
		}
		r, err := w.mergeAll()
		if err != nil {
			return MapOutput{}, err
		}
		data, segs = r.path, r.segs
	}
	return w.commit(data, segs)
}

// mergeAll merges the spills into one synced run.
func (w *MapWriter) mergeAll() (*run, error) {
	combine := w.cfg.Combine != nil && len(w.spills) >= minCombine
	if len(w.spills) == 1 {
		r := w.spills[0]
		return r, syncFile(r.path)
	}
	for first := true; ; first = false {
		k := passFactor(len(w.spills), w.fanIn, first)
		last := k == len(w.spills)
		f, err := w.createTemp(".spill")
		if err != nil {
			return nil, err
		}
		out := w.newSegWriter(f)
		err = w.mergeRuns(w.spills[:k], out, combine)
		if err == nil {
			err = out.Flush()
		}
		if err == nil && last {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		w.counters.SpilledRecords += out.records
		w.counters.SpilledBytes += out.n
		for _, r := range w.spills[:k] {
			os.Remove(r.path)
		}
		r := &run{path: f.Name(), segs: out.segs}
		if last {
			w.spills = nil
			return r, nil
		}
		w.spills = append(w.spills[k:], r)
	}
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// mergeRuns merges runs partition by partition into out.
func (w *MapWriter) mergeRuns(runs []*run, out *segWriter, combine bool) error {
	bufs := w.readBuffers(len(runs))
	rs := make([]*RecordReader, len(runs))
	for i, r := range runs {
		f, err := os.Open(r.path)
		if err != nil {
			return err
		}
		defer f.Close()
		rs[i] = newRecordReaderBuf(f, r.path, bufs[i])
	}
	t := &loserTree{}
	t.reset(rs)
	for p := range w.cfg.Partitions {
		for i, r := range rs {
			seg := runs[i].segs[p]
			if r.off != seg.Offset {
				return r.corrupt(fmt.Sprintf("partition %d starts at %d", p, seg.Offset))
			}
			r.segment(seg.Length)
		}
		if err := t.init(); err != nil {
			return err
		}
		if combine {
			m := &w.merger
			m.reset(t)
			for m.nextGroup() {
				if err := w.combine(out, m.key, m); err != nil {
					return err
				}
				for m.inGroup {
					m.Next()
				}
				w.counters.CombineInputRecords += m.values
			}
			if m.err != nil {
				return m.err
			}
		} else {
			for r := t.top(); r != nil; r = t.top() {
				if err := out.writeRaw(r.rec); err != nil {
					return err
				}
				if err := t.pop(); err != nil {
					return err
				}
			}
		}
		out.endSegment()
	}
	return nil
}

// readBuffers carves k read buffers out of the sort buffer, idle once the
// last spill is written, or allocates them when it is too small.
func (w *MapWriter) readBuffers(k int) [][]byte {
	bufs := make([][]byte, k)
	size := min(len(w.mem)/k, maxReadBuffer)
	for i := range bufs {
		if size >= minReadBuffer {
			bufs[i] = w.mem[i*size : (i+1)*size : (i+1)*size]
		} else {
			bufs[i] = make([]byte, mergeReadBuffer)
		}
	}
	return bufs
}

// commit writes the index, then renames the data file and the index into
// place, the index last: a reader that finds the index finds its data.
func (w *MapWriter) commit(data string, segs []Segment) (MapOutput, error) {
	f, err := w.createTemp(".index.tmp")
	if err != nil {
		return MapOutput{}, err
	}
	_, err = f.Write(encodeIndex(segs))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return MapOutput{}, err
	}
	out := MapOutput{
		Data:     filepath.Join(w.cfg.Dir, w.cfg.Name+".data"),
		Index:    filepath.Join(w.cfg.Dir, w.cfg.Name+".index"),
		Segments: segs,
	}
	if err := os.Rename(data, out.Data); err != nil {
		return MapOutput{}, err
	}
	w.files = append(w.files, out.Data, out.Index)
	if err := os.Rename(f.Name(), out.Index); err != nil {
		return MapOutput{}, err
	}
	if err := syncDir(w.cfg.Dir); err != nil {
		return MapOutput{}, err
	}
	for _, r := range w.spills {
		os.Remove(r.path)
	}
	w.spills, w.files = nil, nil
	return out, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// release drops the writer's buffers, keeping a full-size sort buffer
// for Buffer when KeepBuffer is set, else freeing it.
func (w *MapWriter) release() {
	if len(w.mem) == w.cfg.BufferBytes && w.cfg.KeepBuffer {
		w.spare = w.mem
	} else if len(w.mem) == w.cfg.BufferBytes {
		FreeBuffer(w.mem)
	}
	w.mem, w.wbuf = nil, nil
}

// Abort stops the writer and removes every file it wrote. It is safe to
// call at any time, more than once, and after Close failed; after a Close
// that succeeded it does nothing (remove a committed output through the
// Store).
func (w *MapWriter) Abort() {
	if w.committed {
		return
	}
	w.closed = true
	w.removeFiles()
	w.release()
	w.spills = nil
	if w.err == nil {
		w.err = errors.New("map writer aborted")
	}
}

func (w *MapWriter) removeFiles() {
	for _, p := range w.files {
		os.Remove(p)
	}
	w.files = nil
}

// Counters returns the writer's counters so far.
func (w *MapWriter) Counters() Counters { return w.counters }

// Spills is the number of spill runs written so far, records spilled on
// their own included, intermediate merges not.
func (w *MapWriter) Spills() int { return w.nspill }

// segWriter is a RecordWriter that cuts its output into segments.
type segWriter struct {
	*RecordWriter
	segs  []Segment
	start int64
	recs  int64
	sink  byte // writeGathered's touches end here, so that they are kept
}

// endSegment ends the current segment: the next partition starts here.
func (w *segWriter) endSegment() {
	w.segs = append(w.segs, Segment{Offset: w.start, Length: w.n - w.start, Records: w.records - w.recs, CRC: w.takeCRC()})
	w.start, w.recs = w.n, w.records
}

// diskError is err from writing under dir: a full or failing disk in the
// guard's words, which name the node and the path; anything else prefixed
// with what failed.
func diskError(g *disk.Guard, err error, dir, what string) error {
	err = g.Wrap(err, dir)
	var fault *disk.FaultError
	if errors.Is(err, disk.ErrFull) || errors.As(err, &fault) {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

package scheduler

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/codec"
	"shoal.dev/shoal/disk"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/shuffle"
	"shoal.dev/shoal/tasklog"
	"shoal.dev/shoal/worker"
)

// retryPause is how long a task that failed for a reason outside the job's
// code (an input replica or a map output went away) waits before the
// reconcile loop may start it again.
const retryPause = time.Second

func (s *Scheduler) startMap(v *view, j *job.Job, sp split, attempt int, backup bool) {
	key := taskKey(v.rec.ID, kindMap, sp.index)
	k := itemKey{kindMap, sp.index}
	ctx, ok := s.register(v.rec.ID, k, attempt, backup)
	if !ok {
		return
	}
	rec := v.rec
	go func() {
		defer s.unregister(key)
		if err := s.acquire(ctx); err != nil {
			s.stopped(ctx, rec.ID, k, false)
			return
		}
		start := time.Now()
		tl := s.openLog(rec.ID, itemKey{kindMap, sp.index}, attempt, start)
		var aio attemptIO
		mr, err := s.runMap(ctx, &rec, j, sp, attempt, tl, &aio)
		s.release()
		s.attemptEnded(rec.ID, itemKey{kindMap, sp.index}, attempt, start, err, ctx.Err() != nil || errors.Is(err, errSuperseded), tl, aio.result())
		if ctx.Err() != nil || errors.Is(err, errSuperseded) {
			s.stopped(ctx, rec.ID, k, true)
			return
		}
		if err != nil {
			s.taskFailed(ctx, rec.ID, itemKey{kindMap, sp.index}, err)
			return
		}
		c := mr.Counters.Clone()
		if mr.Local {
			c.Add(job.DATA_LOCAL_MAPS, 1)
		}
		s.taskDone(rec.ID, itemKey{kindMap, sp.index}, c, nil)
	}()
}

// taskFailed records a failed attempt of a task, unless the task was only
// interrupted (its job ended while it waited). An attempt that failed
// outside the job's code waits a moment before the task may be tried again,
// so a node that cannot work does not use up its attempts in a burst.
func (s *Scheduler) taskFailed(ctx context.Context, jobID string, k itemKey, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	if errors.Is(err, blockstore.ErrUnavailable) {
		s.inputUnavailable(jobID, k, err)
		return
	}
	kind := failureKind(err)
	s.log.Warn("task attempt failed", "job", jobID, "task", taskName(k.k, k.i), "kind", kind.String(), "err", err)
	s.taskDone(jobID, k, nil, err)
	if kind != failInfra {
		return
	}
	t := time.NewTimer(retryPause)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// attemptIO counts what an attempt reads and writes while it runs, for its
// log (tasklog.IO).
type attemptIO struct {
	in, out  atomic.Int64
	locality string // set once the input is read
}

func (a *attemptIO) result() tasklog.IO {
	return tasklog.IO{In: a.in.Load(), Out: a.out.Load(), Locality: a.locality}
}

func (s *Scheduler) runMap(ctx context.Context, rec *JobRecord, j *job.Job, sp split, attempt int, tl *tasklog.Writer, aio *attemptIO) (MapRecord, error) {
	info := job.TaskInfo{JobID: rec.ID, TaskID: mapTaskID(sp.index), Attempt: attempt - 1, Params: maps.Clone(rec.Params)}
	if !sp.gen {
		info.InputFile = sp.parts[0].file.Path
	}
	if tl != nil {
		info.Log = tl
		if sp.gen {
			tl.Logf("map task %s of job %s (%s), attempt %d on %s: generator split %d", info.TaskID, rec.ID, rec.Name, attempt, s.cfg.Self, sp.index)
		} else {
			tl.Logf("map task %s of job %s (%s), attempt %d on %s: input %s", info.TaskID, rec.ID, rec.Name, attempt, s.cfg.Self, sp.path())
		}
	}
	cleanup, err := s.prepareWorkDir(ctx, rec, j, &info)
	if err != nil {
		return MapRecord{}, fmt.Errorf("map task %s: %w", info.TaskID, err)
	}
	defer cleanup()
	task := job.Task{Job: j, Info: info, Timeout: time.Duration(rec.TaskTimeout), Watch: func(user any) func() { return s.publishStatus(ctx, rec.ID, info.TaskID, user) }}
	in := job.GeneratorInput(sp.index)
	name := "map task " + info.TaskID
	local := false
	if !sp.gen {
		name += " (input " + sp.path() + ")"
		in = func(fn func(key, value []byte) error) (err error) {
			local, err = readSplit(ctx, s.cfg.FS, sp, j.Input, &aio.in, fn)
			if err == nil {
				aio.locality = tasklog.Remote
				if local {
					aio.locality = tasklog.Local
				}
			}
			return err
		}
	}

	var out job.Emitter
	var finish func() (job.Counters, error)
	var abort func()
	if rec.MapOnly {
		w := s.createOutput(ctx, rec, j.Output, mapPartName(sp.index), &aio.out)
		out, abort = job.EmitterFunc(w.emit), func() { w.abort(errors.New("map task stopped")) }
		finish = func() (job.Counters, error) {
			if s.finishedElsewhere(rec.ID, itemKey{kindMap, sp.index}) {
				w.abort(errSuperseded)
				return nil, errSuperseded
			}
			return nil, w.close()
		}
	} else if rec.Binary != "" {
		// The worker writes the shuffle output itself.
		out = job.EmitterFunc(func([]byte, []byte) error {
			return errors.New("a shipped job's map task emitted on the agent")
		})
		finish = func() (job.Counters, error) {
			segs, err := s.cfg.Shuffle.Segments(rec.ID, info.TaskID)
			if err == nil {
				aio.out.Store(segmentBytes(segs))
			}
			return nil, nil
		}
		abort = func() { _ = s.cfg.Shuffle.Remove(rec.ID, info.TaskID) }
	} else {
		mw, emit, err := s.newMapWriter(rec, task)
		if err != nil {
			return MapRecord{}, fmt.Errorf("%s: %w", name, err)
		}
		defer s.putSortBuffer(mw)
		out, finish, abort = job.EmitterFunc(emit), func() (job.Counters, error) {
			mo, err := mw.Close()
			if err != nil {
				return nil, err
			}
			aio.out.Store(segmentBytes(mo.Segments))
			c := mw.Counters()
			s.Stats.SpilledBytes.Add(c.SpilledBytes)
			return job.Counters{
				job.COMBINE_INPUT_RECORDS:  c.CombineInputRecords,
				job.COMBINE_OUTPUT_RECORDS: c.CombineOutputRecords,
				job.SPILLED_RECORDS:        c.SpilledRecords,
			}, nil
		}, mw.Abort
	}
	counters, err := job.RunMapTask(ctx, task, in, out)
	if err != nil {
		abort()
		return MapRecord{}, fmt.Errorf("%s: %w", name, err)
	}
	more, err := finish()
	if errors.Is(err, errSuperseded) {
		return MapRecord{}, err
	}
	if err != nil {
		abort()
		return MapRecord{}, fmt.Errorf("%s: write output: %w", name, err)
	}
	counters.Merge(more)
	if err := checkCounters(counters); err != nil {
		abort()
		return MapRecord{}, fmt.Errorf("%s: %w", name, err)
	}
	return MapRecord{Node: s.cfg.Self, Attempt: attempt, Local: local, Counters: counters}, nil
}

// newMapWriter opens the map task's shuffle output and returns it with the
// emit function the task's mapper writes through (worker.NewMapWriter: a
// worker writes a shipped job's map output with the same code).
func (s *Scheduler) newMapWriter(rec *JobRecord, task job.Task) (*shuffle.MapWriter, func(key, value []byte) error, error) {
	return worker.NewMapWriter(task, shuffle.MapConfig{
		Dir:         s.cfg.Shuffle.Dir(rec.ID),
		Name:        task.Info.TaskID,
		Partitions:  rec.Reducers,
		BufferBytes: s.cfg.SortBuffer,
		Buffer:      s.sortBuffer(),
		KeepBuffer:  true, // for putSortBuffer
		Guard:       s.cfg.Disk,
	})
}

// sortBuffer is a sort buffer an earlier map task of this node left, or
// nil.
func (s *Scheduler) sortBuffer() []byte { return s.sortBufs.get(time.Now()) }

// putSortBuffer keeps a finished map writer's sort buffer for the next
// map task. The writer must be closed or aborted.
func (s *Scheduler) putSortBuffer(mw *shuffle.MapWriter) { s.sortBufs.put(mw.Buffer()) }

func (s *Scheduler) startReduce(v *view, j *job.Job, part, splits, attempt int, backup bool) {
	key := taskKey(v.rec.ID, kindReduce, part)
	k := itemKey{kindReduce, part}
	ctx, ok := s.register(v.rec.ID, k, attempt, backup)
	if !ok {
		return
	}
	rec := v.rec
	go func() {
		defer s.unregister(key)
		start := time.Now()
		tl := s.openLog(rec.ID, itemKey{kindReduce, part}, attempt, start)
		var aio attemptIO
		cr, err := s.runReduce(ctx, &rec, j, part, splits, attempt, tl, &aio)
		s.attemptEnded(rec.ID, itemKey{kindReduce, part}, attempt, start, err, ctx.Err() != nil || errors.Is(err, errSuperseded), tl, aio.result())
		if ctx.Err() != nil || errors.Is(err, errSuperseded) {
			s.stopped(ctx, rec.ID, k, true)
			return
		}
		if err != nil {
			s.taskFailed(ctx, rec.ID, itemKey{kindReduce, part}, err)
			return
		}
		s.taskDone(rec.ID, itemKey{kindReduce, part}, cr.Counters, nil)
	}()
}

// runReduce fetches partition part of every accepted map output into local
// spool files as the maps finish, then merges them, reduces, and writes the
// output part.
func (s *Scheduler) runReduce(ctx context.Context, rec *JobRecord, j *job.Job, part, splits, attempt int, tl *tasklog.Writer, aio *attemptIO) (CommitRecord, error) {
	info := job.TaskInfo{JobID: rec.ID, TaskID: reduceTaskID(part), Attempt: attempt - 1, Partition: part, Params: maps.Clone(rec.Params)}
	if tl != nil {
		info.Log = tl
		tl.Logf("reduce task %s of job %s (%s), attempt %d on %s: fetching partition %d of %d map outputs", info.TaskID, rec.ID, rec.Name, attempt, s.cfg.Self, part, splits)
	}
	spool := filepath.Join(s.cfg.Shuffle.Dir(rec.ID), info.TaskID)
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return CommitRecord{}, err
	}
	fetched := map[int]fetchedSegment{} // split -> where its segment is (zero: empty)
	var have itemSet                    // the keys of fetched
	var held int64                      // bytes of fetched held in memory, of s.shuffleMem
	defer func() { s.shuffleMem.give(held) }()
	var shuffled int64
	var wire, remote atomic.Int64 // bytes read from other nodes' streams; their segments' plain bytes
	for len(fetched) < splits {
		wake := s.waitChan()
		v, ok := loadView(s.cfg.Records, rec.ID)
		if !ok || v.state != nil {
			return CommitRecord{}, context.Canceled
		}
		live := s.liveOf(v)
		// Only the outputs not fetched yet: a pass costs the new ones,
		// not every split of the job.
		avail := v.mapsAccepted(live)
		avail = avail.andNot(&have)
		var todo []int
		avail.Each(func(i int) {
			if i < splits {
				todo = append(todo, i)
			}
		})
		for _, i := range todo {
			e, ok := v.acceptedMap(i, live)
			if !ok {
				continue
			}
			seg, err := s.fetchSegment(ctx, rec.ID, e.node, i, part, spool, rec.ShuffleCodec, &wire)
			n := seg.n
			if err == nil && e.node != s.cfg.Self {
				remote.Add(n)
			}
			if err != nil {
				if ctx.Err() != nil {
					return CommitRecord{}, ctx.Err()
				}
				if errors.Is(err, disk.ErrFull) {
					// No room here: the attempt fails as a node fault and
					// the task goes to a node with room.
					return CommitRecord{}, fmt.Errorf("reduce task %s: fetch the output of map %s: %w", info.TaskID, mapTaskID(i), err)
				}
				s.log.Warn("fetch map output", "job", rec.ID, "task", info.TaskID, "map", mapTaskID(i), "from", e.node, "err", err)
				continue
			}
			fetched[i], shuffled = seg, shuffled+n
			held += int64(len(seg.mem))
			aio.in.Store(shuffled)
			have.Add(i)
		}
		if tl != nil && len(fetched) == splits {
			tl.Logf("fetched %d map outputs, %d bytes; reducing", splits, shuffled)
		}
		if len(fetched) == splits {
			break
		}
		t := time.NewTimer(2 * time.Second)
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return CommitRecord{}, ctx.Err()
		}
		t.Stop()
	}

	if err := s.acquire(ctx); err != nil {
		return CommitRecord{}, err
	}
	defer s.release()
	name := "reduce task " + info.TaskID
	cleanup, err := s.prepareWorkDir(ctx, rec, j, &info)
	if err != nil {
		return CommitRecord{}, fmt.Errorf("%s: %w", name, err)
	}
	defer cleanup()
	var inputs []io.Reader
	var lazies []*lazyFile
	for i := 0; i < splits; i++ {
		seg := fetched[i]
		switch {
		case seg.n == 0:
		case seg.mem != nil:
			inputs = append(inputs, bytes.NewReader(seg.mem))
		default:
			l := &lazyFile{path: seg.path}
			if seg.local {
				l.open = func() (io.ReadCloser, error) {
					r, _, err := s.cfg.Shuffle.Open(rec.ID, mapTaskID(i), part)
					return r, err
				}
			}
			inputs, lazies = append(inputs, l), append(lazies, l)
		}
	}
	defer func() {
		for _, l := range lazies {
			l.close()
		}
	}()
	var stats shuffle.MergeStats
	groups := func(fn func(key []byte, values job.Values) error) error {
		var err error
		stats, err = shuffle.MergeGuarded(inputs, spool, s.cfg.Disk, func(key []byte, values shuffle.ValueIter) error { return fn(key, values) })
		return err
	}
	out := s.createOutput(ctx, rec, j.Output, partName(part), &aio.out)
	task := job.Task{Job: j, Info: info, Timeout: time.Duration(rec.TaskTimeout), Watch: func(user any) func() { return s.publishStatus(ctx, rec.ID, info.TaskID, user) }}
	c, err := job.RunReduceTask(ctx, task, groups, job.EmitterFunc(out.emit))
	if err != nil {
		out.abort(err)
		return CommitRecord{}, fmt.Errorf("%s: %w", name, err)
	}
	// The commit: an attempt whose task another node committed meanwhile
	// writes nothing.
	if s.finishedElsewhere(rec.ID, itemKey{kindReduce, part}) {
		out.abort(errSuperseded)
		return CommitRecord{}, errSuperseded
	}
	if err := out.close(); err != nil {
		return CommitRecord{}, fmt.Errorf("%s: write output: %w", name, err)
	}
	c.Add(job.REDUCE_SHUFFLE_BYTES, shuffled)
	c.Add(job.REDUCE_SHUFFLE_WIRE_BYTES, wire.Load())
	c.Add(job.REDUCE_SHUFFLE_REMOTE_BYTES, remote.Load())
	c.Add(job.REDUCE_INPUT_RECORDS, stats.Records)
	if err := checkCounters(c); err != nil {
		return CommitRecord{}, fmt.Errorf("%s: %w", name, err)
	}
	return CommitRecord{Node: s.cfg.Self, Attempt: attempt, Counters: c}, nil
}

// finishedElsewhere reports whether, as this node's records say now,
// another node finished task k of the job (decide's rule for kills).
func (s *Scheduler) finishedElsewhere(id string, k itemKey) bool {
	v, ok := loadView(s.cfg.Records, id)
	if !ok {
		return false
	}
	return finishedElsewhere(decideInput{v: v, self: s.cfg.Self, live: s.liveOf(v)}, k.k, k.i)
}

// fetchedSegment is where a reducer finds one map output's segment of its
// partition once fetched: in memory (mem), in a spool file (path), or,
// for a map output of this node, in place in the shuffle store (local). n
// is its length; 0 for an empty segment.
type fetchedSegment struct {
	n     int64
	mem   []byte
	path  string
	local bool
}

// fetchSegment fetches one map output's partition. A map output of this
// node stays where it is: the merge reads it from the shuffle store (its
// checksum checked then). One of another node is read whole, its checksum
// checked, into memory when s.shuffleMem has room for it, else into the
// spool dir. From another node it asks for the segment compressed with
// codec ("" for plain) and adds the bytes read from the stream to wire.
// The caller gives a segment's memory back to s.shuffleMem when done.
func (s *Scheduler) fetchSegment(ctx context.Context, jobID, node string, split, part int, spool, codec string, wire *atomic.Int64) (fetchedSegment, error) {
	if node == s.cfg.Self {
		segs, err := s.cfg.Shuffle.Segments(jobID, mapTaskID(split))
		if err != nil {
			return fetchedSegment{}, err
		}
		if part < 0 || part >= len(segs) {
			return fetchedSegment{}, fmt.Errorf("map output %s has no partition %d (it has %d)", mapTaskID(split), part, len(segs))
		}
		return fetchedSegment{n: segs[part].Length, local: segs[part].Length > 0}, nil
	}
	r, n, err := shuffle.FetchWith(ctx, s.cfg.Dialer, node, jobID, mapTaskID(split), part, shuffle.FetchOptions{Codec: codec, Wire: wire})
	if err != nil {
		return fetchedSegment{}, err
	}
	defer s.Stats.ShuffleFetchedBytes.Add(n)
	defer r.Close()
	if n == 0 {
		return fetchedSegment{}, nil
	}
	if s.shuffleMem.take(n) {
		mem, err := readSegment(r, n)
		if err != nil {
			s.shuffleMem.give(n)
			return fetchedSegment{}, err
		}
		s.Stats.ShuffleHeldBytes.Add(n)
		return fetchedSegment{n: n, mem: mem}, nil
	}
	path := filepath.Join(spool, mapTaskID(split)+".seg")
	if err := s.cfg.Disk.Check(spool, n); err != nil {
		return fetchedSegment{}, err
	}
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return fetchedSegment{}, s.cfg.Disk.Wrap(err, spool)
	}
	got, err := io.Copy(s.cfg.Disk.Writer(f, spool), r)
	if err == nil && got != n {
		err = fmt.Errorf("segment cut at %d of %d bytes", got, n)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(path+".tmp", path)
	}
	if err != nil {
		os.Remove(path + ".tmp")
		return fetchedSegment{}, err
	}
	return fetchedSegment{n: n, path: path}, nil
}

// readSegment reads a fetched segment of n bytes whole, to its end, where
// the fetch reader checks its length and checksum.
func readSegment(r io.Reader, n int64) ([]byte, error) {
	mem := make([]byte, n)
	if _, err := io.ReadFull(r, mem); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			err = fmt.Errorf("segment cut short of its %d bytes", n)
		}
		return nil, err
	}
	var one [1]byte
	if m, err := r.Read(one[:]); m > 0 || err == nil {
		return nil, fmt.Errorf("segment longer than its %d bytes", n)
	} else if !errors.Is(err, io.EOF) {
		return nil, err
	}
	return mem, nil
}

// lazyFile opens its file on first read and closes it at EOF, so a merge of
// thousands of segments holds only the files it is reading. A spooled
// segment (path, no open) is read once: every punchEvery bytes read, the
// range read is punched out of the file (punchHole), so its page-cache
// pages are free for the reduce's output while the merge goes on.
type lazyFile struct {
	path string
	open func() (io.ReadCloser, error) // opens it instead of path, if set
	f    *bufio.Reader
	file io.Closer
	eof  bool
}

// punchEvery is how many bytes of a spooled segment the merge reads
// between two punches of what it has read.
const punchEvery = 8 << 20

// punchingReader reads a spool file and punches out what it has read,
// punchEvery bytes at a time (see lazyFile). On this VM a page-cache page
// the kernel has not used lately costs about 3.5 CPU-s a GiB to write
// into, one it freed a moment ago a tenth of that: a reduce writes its
// output (a spool and the stored block) as it merges, and the pages its
// segments free are the ones that output reuses.
type punchingReader struct {
	f       *os.File
	off     int64 // bytes read
	punched int64 // bytes punched out, from 0
}

func (p *punchingReader) Read(b []byte) (int, error) {
	n, err := p.f.Read(b)
	p.off += int64(n)
	if p.off-p.punched >= punchEvery || err != nil && p.off > p.punched {
		punchHole(p.f, p.punched, p.off-p.punched)
		p.punched = p.off
	}
	return n, err
}

func (p *punchingReader) Close() error { return p.f.Close() }

func (l *lazyFile) Read(p []byte) (int, error) {
	if l.eof {
		return 0, io.EOF
	}
	if l.f == nil {
		var f io.ReadCloser
		var err error
		if l.open != nil {
			f, err = l.open()
		} else {
			var file *os.File
			file, err = os.OpenFile(l.path, os.O_RDWR, 0)
			if err == nil {
				f = &punchingReader{f: file}
			}
		}
		if err != nil {
			return 0, err
		}
		l.file, l.f = f, bufio.NewReaderSize(f, 64<<10)
	}
	n, err := l.f.Read(p)
	if errors.Is(err, io.EOF) {
		l.close()
		l.eof = true
	}
	return n, err
}

func (l *lazyFile) close() {
	if l.file != nil {
		l.file.Close()
		l.file, l.f = nil, nil
	}
}

// outputFlushBytes is how many bytes of output records an outputWriter
// gathers before writing them on: its buffer grows to this size as the
// output does, so a task that writes a few records allocates a few bytes,
// not a 1 MiB buffer up front.
const outputFlushBytes = 1 << 20

// outputWriter streams a task's output records into a new file of the
// cluster file system. close and abort may both be called, in any order.
type outputWriter struct {
	f    job.OutputFormat
	pw   *io.PipeWriter
	dst  io.Writer      // zw if any, else the pipe (counted)
	zw   io.WriteCloser // the compressor between buf and pw, if any
	buf  []byte         // records not yet written to dst
	done chan error     // the Create's result, sent once
	once sync.Once
	err  error
}

func (s *Scheduler) createOutput(ctx context.Context, rec *JobRecord, f job.OutputFormat, name string, written *atomic.Int64) *outputWriter {
	pr, pw := io.Pipe()
	w := &outputWriter{f: f, pw: pw, done: make(chan error, 1)}
	c := codec.Codec(rec.OutputCodec)
	name += c.Ext()
	cw := &countingWriter{w: pw, n: written}
	zw, err := codec.NewWriter(c, cw)
	if err != nil { // a codec the record names but this binary lacks
		pw.CloseWithError(err)
		pr.CloseWithError(err)
		w.done <- err
		zw = nil
	}
	w.zw = zw
	w.dst = cw
	if zw != nil {
		w.dst = zw
	}
	if err != nil {
		return w
	}
	bs := int64(blockstore.DefaultBlockSize)
	if len(rec.Inputs) > 0 && rec.Inputs[0].BlockSize > 0 {
		bs = rec.Inputs[0].BlockSize
	}
	go func() {
		_, err := s.cfg.FS.Create(ctx, rec.Output+"/"+name, pr, blockstore.CreateOptions{
			BlockSize: bs, Replication: rec.Replication, Overwrite: true,
		})
		pr.CloseWithError(err)
		w.done <- err
	}()
	return w
}

func (w *outputWriter) emit(key, value []byte) error {
	w.buf = job.AppendOutput(w.buf, w.f, key, value)
	if len(w.buf) < outputFlushBytes {
		return nil
	}
	return w.flush()
}

// flush writes the gathered records on.
func (w *outputWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.dst.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}

// wait returns the Create's result, waiting for it the first time.
func (w *outputWriter) wait() error {
	w.once.Do(func() { w.err = <-w.done })
	return w.err
}

func (w *outputWriter) close() error {
	err := w.flush()
	if err == nil && w.zw != nil {
		err = w.zw.Close()
	}
	if err != nil {
		w.pw.CloseWithError(err)
		w.wait()
		return err
	}
	w.pw.Close()
	return w.wait()
}

func (w *outputWriter) abort(err error) {
	w.pw.CloseWithError(err)
	w.wait()
}

// prepareWorkDir gives a task of a job that ships files a private working
// directory holding them, and returns how to remove it.
func (s *Scheduler) prepareWorkDir(ctx context.Context, rec *JobRecord, j *job.Job, info *job.TaskInfo) (func(), error) {
	if len(j.Files) == 0 {
		return func() {}, nil
	}
	dir := filepath.Join(s.cfg.WorkDir, rec.ID, fmt.Sprintf("%s-%d", info.TaskID, info.Attempt))
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, s.cfg.Disk.Wrap(err, s.cfg.WorkDir)
	}
	cleanup := func() { os.RemoveAll(dir) }
	for _, p := range j.Files {
		if err := s.fetchFile(ctx, p, filepath.Join(dir, filepath.Base(p))); err != nil {
			cleanup()
			return nil, fmt.Errorf("ship %s: %w", p, err)
		}
	}
	info.WorkDir = dir
	return cleanup, nil
}

func (s *Scheduler) fetchFile(ctx context.Context, src, dst string) error {
	f, err := s.cfg.FS.Stat(src)
	if err != nil && s.cfg.SyncRecords != nil {
		// The file may have been written elsewhere just before the job was
		// submitted, and its record not have reached this node yet.
		s.cfg.SyncRecords(ctx, blockstore.FileKeyPrefix+src)
		f, err = s.cfg.FS.Stat(src)
	}
	if err != nil {
		return err
	}
	if err := s.cfg.Disk.Check(filepath.Dir(dst), f.Size); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return s.cfg.Disk.Wrap(err, filepath.Dir(dst))
	}
	if _, err := s.cfg.FS.WriteTo(ctx, f, s.cfg.Disk.Writer(out, filepath.Dir(dst))); err != nil {
		out.Close()
		return err
	}
	return s.cfg.Disk.Wrap(out.Close(), filepath.Dir(dst))
}

// statusPeriod is how often a task's own status line is checked.
const statusPeriod = time.Second

// publishStatus copies the status line a task's code reports into the
// record taskstatus/<job>/<task> whenever it changes, until the returned
// stop is called.
func (s *Scheduler) publishStatus(ctx context.Context, jobID, taskID string, task any) func() {
	src, ok := task.(job.StatusSource)
	if !ok {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(statusPeriod)
		defer t.Stop()
		last := ""
		for {
			if st := src.Status(); st != last {
				last = st
				s.cfg.Records.Put(keyJoin(taskStatusPrefix+jobID, taskID), []byte(truncate(st, 512)))
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		cancel()
		<-done
		if st := src.Status(); st != "" {
			s.cfg.Records.Put(keyJoin(taskStatusPrefix+jobID, taskID), []byte(truncate(st, 512)))
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// countingWriter adds the bytes written through it to n.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	k, err := c.w.Write(p)
	c.n.Add(int64(k))
	return k, err
}

// segmentBytes is the size of a map output: its segments' bytes.
func segmentBytes(segs []shuffle.Segment) int64 {
	var n int64
	for _, sg := range segs {
		n += sg.Length
	}
	return n
}

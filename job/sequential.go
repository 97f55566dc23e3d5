package job

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
)

// PanicError is the error CallSafely returns for a panic in user code. Its
// message shows the panic value only; Stack is for logs, not users.
type PanicError struct {
	// Value is what the code panicked with.
	Value any
	// Stack is the panicking goroutine's stack (runtime/debug.Stack).
	Stack []byte
}

// Error returns "panic: " and the panic value.
func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns the panic value if it is an error, so errors.Is and
// errors.As see through the panic.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// CallSafely calls fn and returns its error, or a *PanicError if fn panics.
// Runners call user code (constructors, Map, Reduce, Close, partitioners)
// through it so that a crashing job fails its task instead of the node.
// A runtime.Goexit in fn is not recovered.
func CallSafely(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return fn()
}

// Input is one input split of a sequential run, and one map task.
type Input struct {
	// Path is the input file's path in the cluster file system, what the
	// map task sees as TaskInfo.InputFile.
	Path string
	// Offset is the byte offset of the split's first byte in the file: 0
	// for a whole file. It must be a line boundary. TextInput keys count
	// from it, so a file split into blocks gives the keys the whole file
	// gives.
	Offset int64
	// Open opens the split's bytes. The run closes what it returns.
	Open func() (io.ReadCloser, error)
}

// RunSequential runs j in this process: the reference every distributed
// run of j must match byte for byte, and `shoal job run --local`.
//
// Each input, in order, is one map task (TaskID MapTaskID(n), Attempt 0):
// every record of it under j.Input goes through one mapper. Unless j is
// MapOnly, the map output is split among the reducers partitions (reducers
// < 1 means j.NumReducers: DefaultReducers, else 1) by j's partitioner;
// each partition p is sorted by key then by value, bytewise — Shoal's total
// order, so outputs are deterministic even for reducers that look at value
// order — grouped by key, reduced by one reducer (TaskID ReduceTaskID(p)),
// and written through create to ReduceOutputName(p) ("part-r-NNNNN") in
// j.Output's format (AppendOutput). Every partition's file is created,
// empty ones too. A MapOnly job writes each map task's output, in emission
// order, to MapOutputName(n) ("part-m-NNNNN"); no input, no file. params
// are given to every task as TaskInfo.Params (pass them filled:
// Spec.FillParams).
//
// A generator job (j.Generate > 0) must be given no inputs: it runs
// j.Generate map tasks instead, task n calling Map once with key n in
// decimal and an empty value (see Job.Generate).
//
// RunSequential does not call j.Prepare: build a job that has one with
// Registry.ResolvePrepared, sampling the inputs with NewSampler(inputs,
// j.Input), and pass the parameters it returns.
//
// When j ships Files, each task gets a WorkDir of its own: a temporary
// directory holding a copy of every file (read from the local file system)
// under its base name, mode 0755, removed when the task ends. A Mapper or
// Reducer that is an Aborter is aborted when ctx is done during its task,
// and when its task fails; the counters of one that is a CounterSource are
// added to the run's when its task ends, whether or not it failed.
//
// RunSequential never runs the combiner: combiners must not change results,
// and the distributed runner checks that by comparing with this one. It
// holds all map output in memory, in one arena plus 16 bytes of index per
// pair, so it is for test-sized data and local runs.
//
// It fills the counters a one-process run knows: MAP_INPUT_RECORDS,
// MAP_OUTPUT_RECORDS, MAP_OUTPUT_BYTES (key plus value bytes),
// REDUCE_INPUT_GROUPS, REDUCE_INPUT_RECORDS, REDUCE_OUTPUT_RECORDS,
// TOTAL_LAUNCHED_MAPS and TOTAL_LAUNCHED_REDUCES, each present even when 0.
//
// Errors from a task, user code's included, are wrapped with the task:
// "map task m-000002 (input /x): ..." or "reduce task r-00001: ..."; a panic
// in user code becomes a *PanicError (see CallSafely). The run stops at the
// first error or when ctx is done, returning the counters so far; the files
// created by then are partial and should be discarded.
func RunSequential(ctx context.Context, j *Job, jobID string, params map[string]string, inputs []Input, reducers int, create func(name string) (io.WriteCloser, error)) (Counters, error) {
	c := make(Counters)
	for _, name := range []string{
		MAP_INPUT_RECORDS, MAP_OUTPUT_RECORDS, MAP_OUTPUT_BYTES,
		REDUCE_INPUT_GROUPS, REDUCE_INPUT_RECORDS, REDUCE_OUTPUT_RECORDS,
		TOTAL_LAUNCHED_MAPS, TOTAL_LAUNCHED_REDUCES,
	} {
		c.Add(name, 0)
	}
	if err := j.Validate(); err != nil {
		return c, fmt.Errorf("run job %s: %w", jobID, err)
	}
	if j.Generate > 0 && len(inputs) > 0 {
		return c, fmt.Errorf("run job %s: a generator job takes no inputs, got %d", jobID, len(inputs))
	}
	r := &seqRun{ctx: ctx, job: j, jobID: jobID, params: params, create: create, counters: c}
	n := j.NumReducers(reducers)
	if !j.MapOnly {
		r.out = &mapOutput{parts: make([][]pairRef, n), partitioner: j.partitioner()}
	}
	for i := range j.Generate {
		if err := r.mapTask(i, Input{}); err != nil {
			return c, fmt.Errorf("map task %s: %w", MapTaskID(i), err)
		}
	}
	for i, in := range inputs {
		if err := r.mapTask(i, in); err != nil {
			return c, fmt.Errorf("map task %s (input %s): %w", MapTaskID(i), in.Path, err)
		}
	}
	for p := range n {
		if err := r.reduceTask(p); err != nil {
			return c, fmt.Errorf("reduce task %s: %w", ReduceTaskID(p), err)
		}
	}
	return c, nil
}

// seqRun is the state of one RunSequential.
type seqRun struct {
	ctx      context.Context
	job      *Job
	jobID    string
	params   map[string]string
	create   func(name string) (io.WriteCloser, error)
	counters Counters
	out      *mapOutput // nil for MapOnly
}

func (r *seqRun) mapTask(n int, in Input) (err error) {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	r.counters.Add(TOTAL_LAUNCHED_MAPS, 1)
	info := TaskInfo{JobID: r.jobID, TaskID: MapTaskID(n), InputFile: in.Path, Params: maps.Clone(r.params)}
	if info.WorkDir, err = shipFiles(r.job.Files); err != nil {
		return err
	}
	defer removeWorkDir(info.WorkDir, &err)

	var out Emitter
	var pw *partWriter
	if r.job.MapOnly {
		if pw, err = newPartWriter(r.create, MapOutputName(n), r.job.Output); err != nil {
			return err
		}
		defer pw.abort()
		out = EmitterFunc(pw.write)
	} else {
		out = EmitterFunc(r.out.add)
	}
	src := GeneratorInput(n)
	var rc io.ReadCloser
	if r.job.Generate == 0 {
		if rc, err = in.Open(); err != nil {
			return fmt.Errorf("open input: %w", err)
		}
		defer func() {
			if rc != nil {
				_ = rc.Close()
			}
		}()
		src = func(fn func(k, v []byte) error) error { return ReadRecords(rc, r.job.Input, in.Offset, fn) }
	}
	c, err := RunMapTask(r.ctx, Task{Job: r.job, Info: info}, src, out)
	r.counters.Merge(c)
	if err != nil {
		return err
	}
	if rc != nil {
		err, rc = rc.Close(), nil
		if err != nil {
			return fmt.Errorf("close input: %w", err)
		}
	}
	if pw != nil {
		return pw.close()
	}
	return nil
}

func (r *seqRun) reduceTask(p int) (err error) {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	r.counters.Add(TOTAL_LAUNCHED_REDUCES, 1)
	mo := r.out
	pairs := mo.parts[p]
	mo.parts[p] = nil
	slices.SortFunc(pairs, mo.compare)

	info := TaskInfo{JobID: r.jobID, TaskID: ReduceTaskID(p), Partition: p, Params: maps.Clone(r.params)}
	if info.WorkDir, err = shipFiles(r.job.Files); err != nil {
		return err
	}
	defer removeWorkDir(info.WorkDir, &err)
	pw, err := newPartWriter(r.create, ReduceOutputName(p), r.job.Output)
	if err != nil {
		return err
	}
	defer pw.abort()

	var inRecs int64
	vals := &groupValues{arena: mo.arena}
	groups := func(fn func(key []byte, values Values) error) error {
		for i := 0; i < len(pairs); {
			key := mo.key(pairs[i])
			end := i + 1
			for end < len(pairs) && bytes.Equal(mo.key(pairs[end]), key) {
				end++
			}
			inRecs += int64(end - i)
			vals.pairs = pairs[i:end]
			if err := fn(key, vals); err != nil {
				return err
			}
			i = end
		}
		return nil
	}
	c, err := RunReduceTask(r.ctx, Task{Job: r.job, Info: info}, groups, EmitterFunc(pw.write))
	r.counters.Merge(c)
	r.counters.Add(REDUCE_INPUT_RECORDS, inRecs)
	if err != nil {
		return err
	}
	return pw.close()
}

// shipFiles makes a task's WorkDir: a new temporary directory holding a
// copy of each of files, read from the local file system, under its base
// name with mode 0755. With no files it returns "" and makes nothing.
func shipFiles(files []string) (dir string, err error) {
	if len(files) == 0 {
		return "", nil
	}
	tmp, err := os.MkdirTemp("", "shoal-task-")
	if err != nil {
		return "", fmt.Errorf("make work dir: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	from := make(map[string]string, len(files))
	for _, f := range files {
		name := filepath.Base(f)
		if name == "." || name == ".." || name == string(filepath.Separator) {
			return "", fmt.Errorf("ship file %q: not a file name", f)
		}
		if prev, ok := from[name]; ok {
			return "", fmt.Errorf("ship files %s and %s: both are named %s", prev, f, name)
		}
		from[name] = f
		if err := copyFile(filepath.Join(tmp, name), f); err != nil {
			return "", fmt.Errorf("ship file %s: %w", f, err)
		}
	}
	return tmp, nil
}

// copyFile copies the regular file src to a new file dst, mode 0755.
func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil {
		return err
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%v)", fi.Mode().Type())
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(dst, 0o755) // whatever the umask
	}
	return err
}

// removeWorkDir removes a task's WorkDir, if it has one, setting *err to
// the failure if the task had none.
func removeWorkDir(dir string, err *error) {
	if dir == "" {
		return
	}
	if rerr := os.RemoveAll(dir); rerr != nil && *err == nil {
		*err = fmt.Errorf("remove work dir: %w", rerr)
	}
}

// pairRef locates one map output pair in a mapOutput's arena: the key at
// off, the value right after it.
type pairRef struct {
	off        int
	klen, vlen uint32
}

// mapOutput holds a sequential run's map output: every pair's bytes in one
// arena and, per partition, the pairs' references in emission order.
type mapOutput struct {
	arena       []byte
	parts       [][]pairRef
	partitioner Partitioner
}

func (m *mapOutput) add(k, v []byte) error {
	if uint64(len(k)) > math.MaxUint32 || uint64(len(v)) > math.MaxUint32 {
		return fmt.Errorf("emit: pair of %d+%d bytes is too large", len(k), len(v))
	}
	p := m.partitioner.Partition(k, len(m.parts))
	if p < 0 || p >= len(m.parts) {
		return fmt.Errorf("partitioner returned %d for %d partitions", p, len(m.parts))
	}
	off := len(m.arena)
	m.arena = append(m.arena, k...)
	m.arena = append(m.arena, v...)
	m.parts[p] = append(m.parts[p], pairRef{off: off, klen: uint32(len(k)), vlen: uint32(len(v))})
	return nil
}

// key and value return the pair's bytes, capped so that an append by user
// code cannot overwrite the arena.
func (m *mapOutput) key(p pairRef) []byte {
	end := p.off + int(p.klen)
	return m.arena[p.off:end:end]
}

func (m *mapOutput) value(p pairRef) []byte {
	start := p.off + int(p.klen)
	end := start + int(p.vlen)
	return m.arena[start:end:end]
}

// compare orders pairs by key, then value, bytewise.
func (m *mapOutput) compare(a, b pairRef) int {
	if c := bytes.Compare(m.key(a), m.key(b)); c != 0 {
		return c
	}
	return bytes.Compare(m.value(a), m.value(b))
}

// groupValues iterates the values of one key group of a mapOutput.
type groupValues struct {
	arena []byte
	pairs []pairRef // the group's pairs not yet returned
}

func (g *groupValues) Next() ([]byte, bool) {
	if len(g.pairs) == 0 {
		return nil, false
	}
	p := g.pairs[0]
	g.pairs = g.pairs[1:]
	start := p.off + int(p.klen)
	end := start + int(p.vlen)
	return g.arena[start:end:end], true
}

// partWriter writes output records, in format, to one output file.
type partWriter struct {
	name   string
	format OutputFormat
	wc     io.WriteCloser
	bw     *bufio.Writer
	rec    []byte
	closed bool
}

func newPartWriter(create func(string) (io.WriteCloser, error), name string, format OutputFormat) (*partWriter, error) {
	wc, err := create(name)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	return &partWriter{name: name, format: format, wc: wc, bw: bufio.NewWriterSize(wc, 256<<10)}, nil
}

func (w *partWriter) write(k, v []byte) error {
	w.rec = AppendOutput(w.rec[:0], w.format, k, v)
	if _, err := w.bw.Write(w.rec); err != nil {
		return fmt.Errorf("write %s: %w", w.name, err)
	}
	return nil
}

// close flushes and closes the file.
func (w *partWriter) close() error {
	w.closed = true
	err := w.bw.Flush()
	if cerr := w.wc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", w.name, err)
	}
	return nil
}

// abort closes the file if close was not called, ignoring errors: the
// run failed and the file is partial.
func (w *partWriter) abort() {
	if !w.closed {
		w.closed = true
		_ = w.wc.Close()
	}
}

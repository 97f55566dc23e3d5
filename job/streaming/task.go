package streaming

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"shoal.dev/shoal/job"
)

// task is what the mapper and the reducer of a task share: the children
// it runs, their working directory and environment, and what their stderr
// reports. Its Abort, Counters and Status make them job.Aborter,
// job.CounterSource and job.StatusSource.
type task struct {
	cfg   *Config
	spec  *spec
	info  job.TaskInfo
	isMap bool
	state *taskState

	mu      sync.Mutex
	aborted bool
	live    []*proc // children running
	dir     string  // working directory, once the first child starts
	ownDir  bool    // dir is ours to remove
	env     []string
}

func newTask(cfg *Config, s *spec, info job.TaskInfo, isMap bool) *task {
	return &task{cfg: cfg, spec: s, info: info, isMap: isMap, state: newTaskState()}
}

// splitFor is how the output lines of a child in role become pairs.
func (t *task) splitFor(role string) fieldSplit {
	if role == "reducer" {
		return t.spec.reduceSplit
	}
	return t.spec.mapSplit
}

// start starts a child running command, its output lines going to emit.
func (t *task) start(role, command string, emit func(key, value []byte) error) (*proc, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.aborted {
		return nil, fmt.Errorf("streaming %s %s: %w", role, quoteCommand(command), ErrAborted)
	}
	if t.dir == "" {
		if t.info.WorkDir == "" && len(t.spec.files) > 0 {
			return nil, fmt.Errorf("start streaming %s %s: the job ships files, but the task has no working directory (TaskInfo.WorkDir)", role, quoteCommand(command))
		}
		if t.dir = t.info.WorkDir; t.dir == "" || t.cfg.Credential != nil {
			d, err := t.ownWorkDir()
			if err != nil {
				return nil, fmt.Errorf("start streaming %s %s: make working directory: %w", role, quoteCommand(command), err)
			}
			t.dir, t.ownDir = d, true
		}
		t.env = t.environ()
	}
	p, err := startProc(procConfig{
		role:    role,
		command: command,
		shell:   t.cfg.Shell,
		dir:     t.dir,
		env:     t.env,
		cred:    t.cfg.Credential,
		tracker: t.cfg.Tracker,
		maxLine: t.cfg.MaxLineBytes,
		state:   t.state,
		emit:    emit,
		split:   t.splitFor(role),
		log:     t.info.Log,
	})
	if err != nil {
		return nil, err
	}
	t.live = append(t.live, p)
	if t.cfg.started != nil {
		t.cfg.started(p.pgid)
	}
	return p, nil
}

// ownWorkDir makes the task's own working directory in TempDir. When the
// children run as another user (Config.Credential) it belongs to that
// user and holds copies of the shipped files: the agent's data dir, where
// TaskInfo.WorkDir lies, is closed to other users.
func (t *task) ownWorkDir() (string, error) {
	d, err := os.MkdirTemp(t.cfg.TempDir, "shoal-streaming-")
	if err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		_ = os.RemoveAll(d)
		return "", err
	}
	if t.info.WorkDir != "" {
		ents, err := os.ReadDir(t.info.WorkDir)
		if err != nil {
			return fail(err)
		}
		for _, e := range ents {
			if err := copyFile(filepath.Join(t.info.WorkDir, e.Name()), filepath.Join(d, e.Name())); err != nil {
				return fail(err)
			}
		}
	}
	if c := t.cfg.Credential; c != nil {
		err := filepath.WalkDir(d, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, int(c.Uid), int(c.Gid))
		})
		if err != nil {
			return fail(fmt.Errorf("give it to the task user: %w", err))
		}
	}
	return d, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// environ is the children's environment: ours but Shoal's own (SHOAL_*,
// such as the cluster secret), the task's variables, and cmdenv's, which
// override.
func (t *task) environ() []string {
	path := "/usr/local/bin:/usr/bin:/bin"
	var env []string
	for _, kv := range os.Environ() {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		} else if !strings.HasPrefix(kv, "SHOAL_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"PATH="+path+string(os.PathListSeparator)+t.dir,
		"mapreduce_job_id="+t.info.JobID,
		"mapreduce_task_id="+t.info.TaskID,
		"mapreduce_task_attempt_id="+t.info.JobID+"_"+t.info.TaskID+"_"+strconv.Itoa(t.info.Attempt),
		"mapreduce_task_ismap="+strconv.FormatBool(t.isMap),
	)
	if t.cfg.Marker != "" {
		env = append(env, markerVar+"="+t.cfg.Marker)
	}
	if t.isMap {
		env = append(env, "mapreduce_map_input_file="+t.info.InputFile)
	} else {
		env = append(env, "mapreduce_task_partition="+strconv.Itoa(t.info.Partition))
	}
	return append(env, t.spec.cmdenv...)
}

// done forgets a child that has ended.
func (t *task) done(p *proc) {
	t.mu.Lock()
	if i := slices.Index(t.live, p); i >= 0 {
		t.live = slices.Delete(t.live, i, i+1)
	}
	t.mu.Unlock()
}

// end removes the working directory if it is the task's own. The task
// starts no child after it.
func (t *task) end() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.aborted = true
	if t.ownDir {
		_ = os.RemoveAll(t.dir)
		t.ownDir = false
	}
}

// Abort kills the task's children, each with its whole process group, and
// waits for them and the goroutines serving them; a Map, Reduce or Close
// running meanwhile returns an error wrapping ErrAborted, and so do later
// calls. It may be called from any goroutine, more than once.
func (t *task) Abort() {
	t.mu.Lock()
	t.aborted = true
	live := slices.Clone(t.live)
	t.mu.Unlock()
	for _, p := range live {
		p.abort()
	}
	t.end()
}

// Counters returns the counters the task's children reported on their
// standard error (reporter:counter:GROUP,NAME,N adds N to "GROUP:NAME"),
// and, for a map task with a combiner, COMBINE_INPUT_RECORDS and
// COMBINE_OUTPUT_RECORDS. It is safe to call from any goroutine.
func (t *task) Counters() job.Counters { return t.state.Counters() }

// Status returns the last status a child of the task reported
// (reporter:status:MESSAGE), "" if none. It is safe to call from any
// goroutine.
func (t *task) Status() string { return t.state.Status() }

// Progress counts the reporter:counter and reporter:status lines the
// task's children wrote; it makes tasks job.ProgressSources, so such a
// line resets the task timeout. It is safe to call from any goroutine.
func (t *task) Progress() int64 { return t.state.Progress() }

// mapper is a streaming map task: its Map calls feed one child.
type mapper struct {
	*task
	keyed  bool        // kv input: write key<TAB>value lines
	p      *proc       // nil until the first record
	out    job.Emitter // of the running Map or Close call
	sink   func(key, value []byte) error
	comb   *combineBuffer // nil without a combiner
	closed bool
}

var (
	_ job.Mapper         = (*mapper)(nil)
	_ job.Closer         = (*mapper)(nil)
	_ job.Aborter        = (*mapper)(nil)
	_ job.CounterSource  = (*mapper)(nil)
	_ job.StatusSource   = (*mapper)(nil)
	_ job.ProgressSource = (*mapper)(nil)
)

func newMapper(cfg *Config, s *spec, info job.TaskInfo) *mapper {
	m := &mapper{task: newTask(cfg, s, info, true), keyed: s.input == job.KeyValueInput}
	m.sink = m.emit
	if s.combiner != "" {
		m.comb = &combineBuffer{m: m, limit: cfg.CombineBufferBytes}
		m.comb.sink = m.comb.emit
		m.sink = m.comb.add
	}
	return m
}

// emit emits a pair of map output.
func (m *mapper) emit(key, value []byte) error { return m.out.Emit(key, value) }

// Map writes the record to the mapper command's input: the line for text
// input, key<TAB>value for kv input. It emits the command's output lines
// ready meanwhile.
func (m *mapper) Map(key, value []byte, out job.Emitter) error {
	m.out = out
	if m.p == nil {
		if err := m.startChild(); err != nil {
			return err
		}
	}
	return m.p.put(key, value, m.keyed)
}

func (m *mapper) startChild() error {
	if m.closed {
		return fmt.Errorf("streaming mapper %s: map after close", quoteCommand(m.spec.mapper))
	}
	p, err := m.start("mapper", m.spec.mapper, m.sink)
	if err != nil {
		return err
	}
	m.p = p
	return nil
}

// Close ends the mapper command's input, emits the rest of its output,
// runs the combiner over what it holds, and returns how the command ended.
func (m *mapper) Close(out job.Emitter) error {
	m.out = out
	if m.closed {
		return fmt.Errorf("streaming mapper %s: closed twice", quoteCommand(m.spec.mapper))
	}
	defer m.end()
	if m.p == nil {
		if err := m.startChild(); err != nil {
			return err
		}
	}
	m.closed = true
	err := m.p.finish()
	m.done(m.p)
	if err == nil && m.comb != nil {
		err = m.comb.combine()
	}
	return err
}

// reducer is a streaming reduce task: its Reduce calls feed one child.
type reducer struct {
	*task
	p      *proc
	out    job.Emitter
	sink   func(key, value []byte) error
	closed bool
}

var (
	_ job.Reducer        = (*reducer)(nil)
	_ job.Closer         = (*reducer)(nil)
	_ job.Aborter        = (*reducer)(nil)
	_ job.CounterSource  = (*reducer)(nil)
	_ job.StatusSource   = (*reducer)(nil)
	_ job.ProgressSource = (*reducer)(nil)
)

func newReducer(cfg *Config, s *spec, info job.TaskInfo) *reducer {
	r := &reducer{task: newTask(cfg, s, info, false)}
	r.sink = r.emit
	return r
}

func (r *reducer) emit(key, value []byte) error { return r.out.Emit(key, value) }

// Reduce writes a key<TAB>value line per value (just the key for an empty
// value) to the reducer command's input, emitting the command's output
// lines ready meanwhile.
func (r *reducer) Reduce(key []byte, values job.Values, out job.Emitter) error {
	r.out = out
	if r.p == nil {
		if err := r.startChild(); err != nil {
			return err
		}
	}
	for v, ok := values.Next(); ok; v, ok = values.Next() {
		if err := r.p.put(key, v, true); err != nil {
			return err
		}
	}
	return nil
}

func (r *reducer) startChild() error {
	if r.closed {
		return fmt.Errorf("streaming reducer %s: reduce after close", quoteCommand(r.spec.reducer))
	}
	p, err := r.start("reducer", r.spec.reducer, r.sink)
	if err != nil {
		return err
	}
	r.p = p
	return nil
}

// Close ends the reducer command's input (starting the command if there
// was none, so it runs once), emits the rest of its output, and returns how
// it ended.
func (r *reducer) Close(out job.Emitter) error {
	r.out = out
	if r.closed {
		return fmt.Errorf("streaming reducer %s: closed twice", quoteCommand(r.spec.reducer))
	}
	defer r.end()
	if r.p == nil {
		if err := r.startChild(); err != nil {
			return err
		}
	}
	r.closed = true
	err := r.p.finish()
	r.done(r.p)
	return err
}

// pairOverhead is what a pair costs a combineBuffer beyond its bytes.
const pairOverhead = 16

// combineBuffer holds a map task's output pairs for the combiner: the
// bytes in one arena, and a reference per pair.
type combineBuffer struct {
	m     *mapper
	limit int
	arena []byte
	pairs []pairRef
	size  int // bytes held, counting pairOverhead a pair
	sink  func(key, value []byte) error
	outN  int64 // pairs emitted by the running combine
}

// pairRef locates a pair in the arena: the key at off, the value after it.
type pairRef struct {
	off        int
	klen, vlen uint32
}

// add holds a pair of map output, first combining what is held if the
// pair does not fit.
func (c *combineBuffer) add(key, value []byte) error {
	n := len(key) + len(value) + pairOverhead
	if len(c.pairs) > 0 && c.size+n > c.limit {
		if err := c.combine(); err != nil {
			return err
		}
	}
	c.pairs = append(c.pairs, pairRef{off: len(c.arena), klen: uint32(len(key)), vlen: uint32(len(value))})
	c.arena = append(c.arena, key...)
	c.arena = append(c.arena, value...)
	c.size += n
	return nil
}

func (c *combineBuffer) key(p pairRef) []byte {
	end := p.off + int(p.klen)
	return c.arena[p.off:end:end]
}

func (c *combineBuffer) value(p pairRef) []byte {
	start := p.off + int(p.klen)
	end := start + int(p.vlen)
	return c.arena[start:end:end]
}

func (c *combineBuffer) compare(a, b pairRef) int {
	if r := bytes.Compare(c.key(a), c.key(b)); r != 0 {
		return r
	}
	return bytes.Compare(c.value(a), c.value(b))
}

// emit emits a pair of combiner output as map output.
func (c *combineBuffer) emit(key, value []byte) error {
	c.outN++
	return c.m.out.Emit(key, value)
}

// combine sorts the pairs held, pipes them through one run of the
// combiner command, emits its output and empties the buffer. With no
// pairs held it does nothing.
func (c *combineBuffer) combine() error {
	if len(c.pairs) == 0 {
		return nil
	}
	slices.SortFunc(c.pairs, c.compare)
	pairs := c.pairs
	c.pairs, c.size, c.outN = c.pairs[:0], 0, 0
	defer func() { c.arena = c.arena[:0] }()
	p, err := c.m.start("combiner", c.m.spec.combiner, c.sink)
	if err != nil {
		return err
	}
	defer c.m.done(p)
	in := int64(0)
	defer func() {
		c.m.state.add(job.COMBINE_INPUT_RECORDS, in)
		c.m.state.add(job.COMBINE_OUTPUT_RECORDS, c.outN)
	}()
	for _, pr := range pairs {
		if err := p.put(c.key(pr), c.value(pr), true); err != nil {
			return err
		}
		in++
	}
	return p.finish()
}

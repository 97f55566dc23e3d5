package worker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"shoal.dev/shoal/job"
	"shoal.dev/shoal/shuffle"
)

// Serve serves the worker protocol on descriptors 3 (lifeline), 4 (in)
// and 5 (out) for the jobs of reg, and returns the process's exit code: 0
// when the agent closes the pipe, 2 on a protocol error, 3 at a version
// mismatch. It exits the process (status 3) when the lifeline ends: its
// agent is gone. cli.Main calls it when EnvVar is set.
func Serve(reg *job.Registry) int {
	life := os.NewFile(3, "shoal-lifeline")
	in := os.NewFile(4, "shoal-worker-in")
	out := os.NewFile(5, "shoal-worker-out")
	if life == nil || in == nil || out == nil {
		fmt.Fprintln(os.Stderr, "shoal worker: started without the agent's pipes (descriptors 3 to 5)")
		return 2
	}
	for _, f := range []*os.File{life, in, out} {
		syscall.CloseOnExec(int(f.Fd())) // not for what user code starts
	}
	go func() {
		var b [1]byte
		for {
			if _, err := life.Read(b[:]); err != nil {
				os.Exit(3) // the agent is gone
			}
		}
	}()
	err := serve(context.Background(), reg, in, out)
	if err == nil || errors.Is(err, io.EOF) {
		return 0
	}
	fmt.Fprintf(os.Stderr, "shoal worker: %v\n", err)
	if errors.Is(err, errVersion) {
		return 3
	}
	return 2
}

var errVersion = errors.New("protocol version mismatch")

// serveMinor is the minor version a worker announces: ProtoMinor, but a
// test plays an older worker with it.
var serveMinor = ProtoMinor

// server is one worker's end of the protocol. Writes to w are serialized
// by mu: the status reporter writes from its own goroutine.
type server struct {
	reg *job.Registry
	fr  *frameReader
	mu  sync.Mutex
	w   *bufio.Writer
	dir string // the directory the worker started in
}

func serve(ctx context.Context, reg *job.Registry, in io.Reader, out io.Writer) error {
	s := &server{reg: reg, fr: newFrameReader(in), w: bufio.NewWriterSize(out, 256<<10)}
	s.dir, _ = os.Getwd()
	var h hello
	if err := s.fr.readMsg(frameHello, &h); err != nil {
		return err
	}
	var names []string
	for _, sp := range reg.Specs() {
		names = append(names, sp.Name)
	}
	if err := writeMsg(s.w, frameHello, hello{Proto: Proto, Minor: serveMinor, GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, Jobs: names}); err != nil {
		return err
	}
	if h.Proto != Proto {
		return fmt.Errorf("%w: the agent speaks %d, this program %d", errVersion, h.Proto, Proto)
	}
	for {
		t, p, err := s.fr.read()
		if err != nil {
			return err
		}
		switch t {
		case frameDescribe:
			var q describeReq
			if err := decodeMsg(t, p, &q); err != nil {
				return err
			}
			if err := writeMsg(s.w, frameInfo, s.describe(q)); err != nil {
				return err
			}
		case framePrepare:
			var q prepareReq
			if err := decodeMsg(t, p, &q); err != nil {
				return err
			}
			r, err := s.prepare(ctx, q)
			if err != nil {
				return err
			}
			if err := writeMsg(s.w, frameInfo, r); err != nil {
				return err
			}
		case frameTask:
			var q taskReq
			if err := decodeMsg(t, p, &q); err != nil {
				return err
			}
			if err := s.task(ctx, q); err != nil {
				return err
			}
		default:
			return protoErrorf("frame type %q where a request was due", t)
		}
	}
}

func (s *server) describe(q describeReq) infoReply {
	j, err := s.reg.Resolve(q.Name, q.Params)
	if err != nil {
		return badJobReply(err)
	}
	sp, _ := s.reg.Lookup(q.Name)
	params, _ := sp.FillParams(q.Params)
	return infoOf(q.Name, j, params)
}

func badJobReply(err error) infoReply {
	kind := errOther
	switch {
	case errors.Is(err, job.ErrUnknownJob):
		kind = errUnknownJob
	case errors.Is(err, job.ErrBadParam):
		kind = errBadParam
	}
	return infoReply{Err: err.Error(), Kind: kind}
}

func infoOf(name string, j *job.Job, params map[string]string) infoReply {
	return infoReply{Info: Info{
		Name: name, Params: params, MapOnly: j.MapOnly, DefaultReducers: j.DefaultReducers,
		Generate: j.Generate, Input: j.Input, Output: j.Output, Files: j.Files, Prepare: j.Prepare != nil,
	}}
}

// prepare runs the job's Prepare, its Sampler asking the agent for each
// sample, and answers with the rebuilt job's info: the parameters are the
// merged ones every task is built from. It returns an error only when the
// protocol breaks; the job's errors go in the reply.
func (s *server) prepare(ctx context.Context, q prepareReq) (infoReply, error) {
	var protoErr error
	sampler := job.SamplerFunc(func(ctx context.Context, splits, perSplit int) ([][]byte, error) {
		if protoErr != nil {
			return nil, protoErr
		}
		var r keysReply
		err := writeMsg(s.w, frameSample, sampleReq{Splits: splits, PerSplit: perSplit})
		if err == nil {
			err = s.fr.readMsg(frameKeys, &r)
		}
		if err != nil {
			protoErr = err
			return nil, err
		}
		if r.Err != "" {
			return nil, errors.New(r.Err)
		}
		return r.Keys, nil
	})
	j, params, err := s.reg.ResolvePrepared(ctx, q.Name, q.Params, sampler, q.Reducers)
	if protoErr != nil {
		return infoReply{}, protoErr
	}
	if err != nil {
		return badJobReply(err), nil
	}
	return infoOf(q.Name, j, params), nil
}

// task runs one task. It returns an error only when the protocol breaks:
// a failure of the task is reported in its 'F' frame.
func (s *server) task(ctx context.Context, q taskReq) error {
	dir := q.WorkDir
	if dir == "" {
		dir = s.dir
	}
	if dir != "" {
		if err := os.Chdir(dir); err != nil {
			return s.finishInput(&pairSource{fr: s.fr}, nil, fmt.Errorf("enter the task's directory: %w", err), errOther)
		}
	}
	j, err := s.reg.Resolve(q.Name, q.Params)
	if err != nil {
		return s.finishInput(&pairSource{fr: s.fr}, nil, err, errUser)
	}
	info := job.TaskInfo{JobID: q.JobID, TaskID: q.TaskID, Attempt: q.Attempt, InputFile: q.InputFile, Partition: q.Partition, Params: q.Params, WorkDir: q.WorkDir}
	st := &statusReporter{s: s}
	task := job.Task{Job: j, Info: info, Watch: st.watch}
	src := &pairSource{fr: s.fr}
	var c job.Counters
	out := &pairSink{s: s}
	if q.Reduce {
		c, err = job.RunReduceTask(ctx, task, src.groups, out)
	} else if q.MapOnly {
		c, err = job.RunMapTask(ctx, task, src.records, out)
	} else {
		c, err = s.mapToShuffle(ctx, q, task, src)
	}
	if ferr := out.flush(); err == nil && ferr != nil {
		return ferr
	}
	if src.protoErr != nil {
		return src.protoErr
	}
	kind := errNone
	switch {
	case err == nil:
	case job.IsPermanent(err):
		kind = errPermanent
	case job.IsUserError(err):
		kind = errUser
	default:
		kind = errOther
	}
	return s.finishInput(src, c, err, kind)
}

// mapToShuffle runs a map task whose output goes to the agent's shuffle
// directory, partitioned, sorted and combined as the agent does for a
// built-in job.
func (s *server) mapToShuffle(ctx context.Context, q taskReq, task job.Task, src *pairSource) (job.Counters, error) {
	mw, emit, err := NewMapWriter(task, shuffle.MapConfig{Dir: q.ShuffleDir, Name: q.TaskID, Partitions: q.Reducers, BufferBytes: q.SortBuffer})
	if err != nil {
		return nil, err
	}
	c, err := job.RunMapTask(ctx, task, src.records, job.EmitterFunc(emit))
	if err != nil {
		mw.Abort()
		return c, err
	}
	if _, err := mw.Close(); err != nil {
		mw.Abort()
		return c, fmt.Errorf("write map output: %w", err)
	}
	mc := mw.Counters()
	c.Add(job.COMBINE_INPUT_RECORDS, mc.CombineInputRecords)
	c.Add(job.COMBINE_OUTPUT_RECORDS, mc.CombineOutputRecords)
	c.Add(job.SPILLED_RECORDS, mc.SpilledRecords)
	return c, nil
}

// finishInput sends the task's 'F' frame, then reads what is left of the
// task's input, so that the worker can serve the next task: a failure
// reaches the agent at once, which may also end the worker instead.
func (s *server) finishInput(src *pairSource, c job.Counters, err error, kind int) error {
	d := doneMsg{Counters: c, Kind: kind}
	if err != nil {
		d.Err = err.Error()
		if d.Kind == errNone {
			d.Kind = errOther
		}
	}
	s.mu.Lock()
	werr := writeMsg(s.w, frameDone, d)
	s.mu.Unlock()
	if werr != nil {
		return werr
	}
	return src.drain()
}

func decodeMsg(t byte, p []byte, v any) error {
	if err := msgpack.Unmarshal(p, v); err != nil {
		return protoErrorf("malformed %q frame: %v", t, err)
	}
	return nil
}

// pairSource reads a task's input from data frames up to its 'E' frame.
type pairSource struct {
	fr       *frameReader
	cur      []byte
	ended    bool
	protoErr error // the input broke the protocol
	// reduce state: the current pair, not yet consumed
	key, val []byte
	same     bool
	ok       bool
}

// next loads the next pair; ok is false at the end of the input.
func (p *pairSource) next() (bool, error) {
	for len(p.cur) == 0 {
		if p.ended {
			return false, nil
		}
		t, b, err := p.fr.read()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			p.protoErr = err
			return false, err
		}
		switch t {
		case frameEnd:
			p.ended = true
		case frameData:
			p.cur = b
		default:
			p.protoErr = protoErrorf("frame type %q inside a task's input", t)
			return false, p.protoErr
		}
	}
	k, v, same, rest, err := nextPair(p.cur)
	if err != nil {
		p.protoErr = err
		return false, err
	}
	p.key, p.val, p.same, p.cur = k, v, same, rest
	return true, nil
}

// drain skips the rest of the input.
func (p *pairSource) drain() error {
	for !p.ended {
		p.cur = nil
		if _, err := p.next(); err != nil {
			return err
		}
	}
	return nil
}

func (p *pairSource) records(fn func(key, value []byte) error) error {
	for {
		ok, err := p.next()
		if err != nil || !ok {
			return err
		}
		if p.same {
			p.protoErr = protoErrorf("a map record without a key")
			return p.protoErr
		}
		if err := fn(p.key, p.val); err != nil {
			return err
		}
	}
}

func (p *pairSource) groups(fn func(key []byte, values job.Values) error) error {
	var err error
	if p.ok, err = p.next(); err != nil {
		return err
	}
	var key []byte
	for p.ok {
		if p.same {
			p.protoErr = protoErrorf("a reduce group without a key")
			return p.protoErr
		}
		key = append(key[:0], p.key...)
		vs := &groupValues{p: p, first: true}
		if err := fn(key, vs); err != nil {
			return err
		}
		for !vs.done { // skip the values the reducer left
			if _, ok := vs.Next(); !ok {
				break
			}
		}
		if vs.err != nil {
			return vs.err
		}
	}
	return nil
}

// groupValues iterates one key group's values. When it ends, p holds the
// next group's first pair (or p.ok is false).
type groupValues struct {
	p     *pairSource
	first bool
	done  bool
	err   error
}

func (g *groupValues) Next() ([]byte, bool) {
	if g.done {
		return nil, false
	}
	if g.first {
		g.first = false
		return g.p.val, true
	}
	ok, err := g.p.next()
	g.p.ok = ok
	if err != nil || !ok || !g.p.same {
		g.done, g.err = true, err
		if err != nil {
			g.p.ok = false
		}
		return nil, false
	}
	return g.p.val, true
}

// pairSink sends a task's output pairs to the agent in data frames.
type pairSink struct {
	s   *server
	buf []byte
}

func (o *pairSink) Emit(key, value []byte) error {
	o.buf = appendPair(o.buf, key, value, false)
	if len(o.buf) >= batchBytes {
		return o.flush()
	}
	return nil
}

func (o *pairSink) flush() error {
	if len(o.buf) == 0 {
		return nil
	}
	o.s.mu.Lock()
	defer o.s.mu.Unlock()
	err := writeFrame(o.s.w, frameData, o.buf)
	if err == nil {
		err = o.s.w.Flush()
	}
	o.buf = o.buf[:0]
	return err
}

// statusReporter sends the status line and progress count of the task's
// user code to the agent when they change, every statusEvery.
type statusReporter struct {
	s *server
}

const statusEvery = 500 * time.Millisecond

func (r *statusReporter) watch(user any) func() {
	ss, _ := user.(job.StatusSource)
	ps, _ := user.(job.ProgressSource)
	if ss == nil && ps == nil {
		return func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(statusEvery)
		defer t.Stop()
		var last statusMsg
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			var m statusMsg
			_ = job.CallSafely(func() error {
				if ss != nil {
					m.Status = ss.Status()
				}
				if ps != nil {
					m.Progress = ps.Progress()
				}
				return nil
			})
			if m == last {
				continue
			}
			last = m
			r.s.mu.Lock()
			_ = writeMsg(r.s.w, frameStatus, m)
			r.s.mu.Unlock()
		}
	}()
	return func() { close(quit); <-done }
}

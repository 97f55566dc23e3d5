package worker

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"shoal.dev/shoal/job"
)

// PoolConfig configures a Pool.
type PoolConfig struct {
	// Marker, if set, is put in every worker's environment as
	// SHOAL_TASK_OWNER=Marker, the mark package streaming's SweepStale
	// looks for: an agent that starts again on the same data dir kills
	// what a crashed run of it left.
	Marker string
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Pool runs the workers of one node: for each shipped job, up to one per
// task slot (a task takes an idle worker of its job or starts one, and
// gives it back when it succeeds), ended when the job ends (CloseJob). It
// is safe for concurrent use.
type Pool struct {
	cfg     PoolConfig
	log     *slog.Logger
	started atomic.Int64

	mu     sync.Mutex
	idle   map[string][]*proc // by job ID
	ended  []string           // the last jobs ended, so a late put kills
	closed bool
}

// NewPool returns an empty pool.
func NewPool(cfg PoolConfig) *Pool {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Pool{cfg: cfg, log: cfg.Logger, idle: map[string][]*proc{}}
}

// Started is how many worker processes the pool has started, describing
// ones included.
func (p *Pool) Started() int64 { return p.started.Load() }

// env is a worker's environment: the agent's, without its secrets, with
// the worker protocol's version and the marker.
func (p *Pool) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "SHOAL_SECRET") || strings.HasPrefix(k, "SHOAL_TOKEN") || k == EnvVar || k == "SHOAL_TASK_OWNER" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, fmt.Sprintf("%s=%d", EnvVar, Proto))
	if p.cfg.Marker != "" {
		env = append(env, "SHOAL_TASK_OWNER="+p.cfg.Marker)
	}
	return env
}

// start starts a worker for the tasks of jobID, or to describe a job
// (jobID "").
func (p *Pool) start(ctx context.Context, jobID, bin string) (*proc, error) {
	w, err := start(ctx, bin, p.env())
	if err != nil {
		return nil, err
	}
	p.started.Add(1)
	if jobID == "" {
		p.log.Info("started a worker process to describe a job", "pid", w.pid)
	} else {
		p.log.Info("started a worker process", "job", jobID, "pid", w.pid)
	}
	return w, nil
}

// get returns an idle worker of the job, or a new one.
func (p *Pool) get(ctx context.Context, jobID, bin string) (*proc, error) {
	p.mu.Lock()
	if p.closed || slices.Contains(p.ended, jobID) {
		p.mu.Unlock()
		return nil, errors.New("the job has ended on this node")
	}
	for len(p.idle[jobID]) > 0 {
		ws := p.idle[jobID]
		w := ws[len(ws)-1]
		p.idle[jobID] = ws[:len(ws)-1]
		if w.alive() {
			p.mu.Unlock()
			return w, nil
		}
		w.kill()
	}
	p.mu.Unlock()
	return p.start(ctx, jobID, bin)
}

// put gives a worker back after a task it served to the end.
func (p *Pool) put(jobID string, w *proc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || slices.Contains(p.ended, jobID) || !w.alive() {
		w.kill()
		return
	}
	p.idle[jobID] = append(p.idle[jobID], w)
}

// maxEnded is how many ended jobs the pool remembers, to kill a worker
// given back after its job ended.
const maxEnded = 256

// CloseJob ends the idle workers of a job and those given back later;
// workers still serving a task end with it (the scheduler cancels the
// job's tasks).
func (p *Pool) CloseJob(jobID string) {
	p.mu.Lock()
	ws := p.idle[jobID]
	delete(p.idle, jobID)
	if !slices.Contains(p.ended, jobID) {
		if len(p.ended) == maxEnded {
			p.ended = p.ended[1:]
		}
		p.ended = append(p.ended, jobID)
	}
	p.mu.Unlock()
	for _, w := range ws {
		w.kill()
	}
}

// Close ends every idle worker; workers given back later are ended too.
// It is safe to call twice.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	var ws []*proc
	for id, l := range p.idle {
		ws = append(ws, l...)
		delete(p.idle, id)
	}
	p.mu.Unlock()
	for _, w := range ws {
		w.kill()
	}
	for _, w := range ws {
		<-w.exited
	}
}

// ErrBadJob is matched by Describe's errors about the job the user asked
// for (an unknown name, a bad parameter), as opposed to the program.
var ErrBadJob = errors.New("bad job")

// Describe checks bin (CheckBinary), starts a worker of it, and asks it
// for the job name built from params. Errors name what is wrong: the
// program (not a Go executable, another OS or architecture, no worker
// protocol or another version of it, a crash) or the job (ErrBadJob: not
// in the program, a bad parameter).
func (p *Pool) Describe(ctx context.Context, bin, name string, params map[string]string) (Info, error) {
	if err := CheckBinary(bin); err != nil {
		return Info{}, err
	}
	w, err := p.start(ctx, "", bin)
	if err != nil {
		return Info{}, err
	}
	defer func() { w.kill(); <-w.exited }()
	r, err := w.describe(name, params)
	if err != nil {
		return Info{}, err
	}
	return r.result()
}

// Prepare runs the Prepare of the job name (Info.Prepare) in a worker of
// bin: its Sampler's calls come back here and s answers them (the agent
// reads the job's input), and reducers is the reducer count asked (< 1:
// the job's default). It returns the info of the job rebuilt with the
// parameters Prepare returned, which every task is built from. Errors are
// Describe's, a Prepare's error, or a program built against a Shoal whose
// workers cannot run Prepare.
func (p *Pool) Prepare(ctx context.Context, bin, name string, params map[string]string, reducers int, s job.Sampler) (Info, error) {
	if err := CheckBinary(bin); err != nil {
		return Info{}, err
	}
	w, err := p.start(ctx, "", bin)
	if err != nil {
		return Info{}, err
	}
	defer func() { w.kill(); <-w.exited }()
	if w.minor < 1 {
		return Info{}, fmt.Errorf("%w: %s has a Prepare step, and the shipped program was built against a Shoal whose workers cannot run one (worker protocol %d.%d, this agent %d.%d): rebuild it", ErrBadJob, name, Proto, w.minor, Proto, ProtoMinor)
	}
	stop := context.AfterFunc(ctx, w.kill)
	defer stop()
	r, err := w.prepare(ctx, prepareReq{Name: name, Params: params, Reducers: reducers}, s)
	if err != nil {
		if ctx.Err() != nil {
			return Info{}, fmt.Errorf("%s: prepare: %w", name, context.Cause(ctx))
		}
		return Info{}, err
	}
	return r.result()
}

// CheckBinary reports whether path is a Go executable built for this
// node's OS and architecture, in words a user can act on.
func CheckBinary(path string) error {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return fmt.Errorf("the shipped program is not a Go executable (%v)", err)
	}
	goos, goarch := "", ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		}
	}
	if goos == "" || goarch == "" {
		return nil // built without settings (go test binaries): the hello checks
	}
	if goos != runtime.GOOS || goarch != runtime.GOARCH {
		return fmt.Errorf("the shipped program is built for %s/%s, but this node runs %s/%s: build it with GOOS=%s GOARCH=%s", goos, goarch, runtime.GOOS, runtime.GOARCH, runtime.GOOS, runtime.GOARCH)
	}
	return nil
}

// JobConfig is what a shipped job's stand-in needs on one node.
type JobConfig struct {
	// Info is the job, as Describe returned it at submission.
	Info Info
	// Binary returns the path of the verified program on this node,
	// fetching it the first time. It is called by the first task of the
	// job on the node, and may block.
	Binary func(ctx context.Context) (string, error)
	// Reducers is the job's number of reduce partitions.
	Reducers int
	// ShuffleDir is where map tasks write their output on this node.
	ShuffleDir string
	// SortBuffer is each map task's sort buffer in bytes.
	SortBuffer int
}

// Job returns a stand-in for a shipped job: a job.Job whose mappers and
// reducers send their records to workers of the pool and whose
// properties (formats, files, map-only, reducers) are the shipped
// job's. A map task of a job with reducers writes its shuffle output in
// the worker and emits nothing on the agent's side; run it with an
// emitter that is never called.
func (p *Pool) Job(c JobConfig) *job.Job {
	j := &job.Job{
		Input: c.Info.Input, Output: c.Info.Output, MapOnly: c.Info.MapOnly,
		DefaultReducers: c.Info.DefaultReducers, Generate: c.Info.Generate, Files: c.Info.Files,
		NewMapper: func(info job.TaskInfo) (job.Mapper, error) {
			return p.newProxy(c, info, false)
		},
	}
	if !c.Info.MapOnly {
		j.NewReducer = func(info job.TaskInfo) (job.Reducer, error) {
			return p.newProxy(c, info, true)
		}
	}
	return j
}

func (p *Pool) newProxy(c JobConfig, info job.TaskInfo, reduce bool) (*proxy, error) {
	ctx := context.Background()
	bin, err := c.Binary(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetch the shipped program: %w", err)
	}
	w, err := p.get(ctx, info.JobID, bin)
	if err != nil {
		return nil, err
	}
	q := taskReq{
		Reduce: reduce, Name: c.Info.Name, Params: info.Params, JobID: info.JobID, TaskID: info.TaskID,
		Attempt: info.Attempt, InputFile: info.InputFile, Partition: info.Partition, WorkDir: info.WorkDir,
		MapOnly: c.Info.MapOnly,
	}
	if !reduce && !c.Info.MapOnly {
		q.Reducers, q.ShuffleDir, q.SortBuffer = c.Reducers, c.ShuffleDir, c.SortBuffer
	}
	if err := writeMsg(w.w, frameTask, q); err != nil {
		w.kill()
		return nil, w.deathError("before its task " + info.TaskID + " started")
	}
	pr := &proxy{pool: p, w: w, jobID: info.JobID, taskID: info.TaskID, reduce: reduce, pairsBack: reduce || c.Info.MapOnly, done: make(chan struct{})}
	return pr, nil
}

// result is the Info a worker answered, or its error: an unknown job or a
// bad parameter is ErrBadJob (a 400 at submission), anything else the
// worker's words.
func (r infoReply) result() (Info, error) {
	if r.Err == "" {
		return r.Info, nil
	}
	if r.Kind == errUnknownJob || r.Kind == errBadParam {
		return Info{}, fmt.Errorf("%w: %s", ErrBadJob, r.Err)
	}
	return Info{}, errors.New(r.Err)
}

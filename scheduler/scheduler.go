package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/disk"
	"shoal.dev/shoal/gossip"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/mesh"
	"shoal.dev/shoal/ring"
	"shoal.dev/shoal/shuffle"
	"shoal.dev/shoal/tasklog"
	"shoal.dev/shoal/worker"
)

// Errors returned by Submit and the job calls.
var (
	// ErrBadRequest: the submission is invalid; nothing was written.
	ErrBadRequest = errors.New("bad job request")
	// ErrNoJob: no job has that ID.
	ErrNoJob = errors.New("no such job")
	// ErrNoProgram: a shipped job's program is not stored in the cluster
	// (never stored, or deleted by the clean-up of BinaryDir meanwhile);
	// storing it again and submitting again fixes it. Nothing was written.
	ErrNoProgram = errors.New("not stored in the cluster")
)

// Records is the part of the replicated metadata the scheduler uses.
// *gossip.Store implements it.
type Records interface {
	Put(key string, value []byte) (gossip.Record, error)
	Get(key string) (gossip.Record, bool)
	Delete(key string) error
	// DeleteAll deletes keys in as few disk commits as it can.
	DeleteAll(keys []string) error
	Scan(prefix string) []gossip.Record
	Watch(prefix string) (<-chan gossip.Record, func())
}

// Config wires a scheduler. Every field is required but those with a
// default.
type Config struct {
	Self     string
	Registry *job.Registry
	Records  Records
	FS       *blockstore.FS
	Shuffle  *shuffle.Store
	Dialer   mesh.Dialer
	// Ring returns the ring of alive members (block placement).
	Ring func() *ring.Ring
	// Slots bounds the tasks computing at once on this node. Default: the
	// number of CPUs.
	Slots int
	// SortBuffer is each map task's sort buffer in bytes. Default
	// shuffle.DefaultBufferBytes (128 MiB).
	SortBuffer int
	// ShuffleMemory bounds the bytes of fetched map output that this
	// node's reducers hold in memory, all reducers together; a segment
	// that does not fit is spooled to disk. Default
	// DefaultShuffleMemory; negative: every segment is spooled.
	ShuffleMemory int64
	// WorkDir holds task working directories (for jobs that ship files).
	// Required.
	WorkDir string
	// SyncRecords, if set, pulls the records under a key prefix from every
	// alive member and merges them before it returns (read-your-writes): a
	// task uses it when a file its job names (a shipped -file) is not yet
	// known here, as the submitter may have written it a moment ago.
	SyncRecords func(ctx context.Context, prefix string)
	// Usable, if set, says whether an alive member may take tasks (a
	// member whose data dir is unusable may not). It is called often and
	// must not block. Default: every alive member may.
	Usable func(node string) bool
	// Disk admits the node's shuffle writes (spills, merges, fetched
	// segments) against its reserve and reports ENOSPC clearly; nil admits
	// all. A refused write fails the attempt as a node fault, not the
	// job's code.
	Disk *disk.Guard
	// Interval is the reconcile period when nothing else wakes the loop,
	// and of the history clean-up. Default 1s.
	Interval time.Duration
	// JobHistory is how many ended jobs' summaries the cluster keeps; older
	// ones are deleted. Default DefaultJobHistory.
	JobHistory int
	// JobHistoryAge, if positive, also deletes summaries of jobs that
	// ended longer ago than this.
	JobHistoryAge time.Duration
	// BinaryGrace is how long a shipped program that no job which has not
	// ended references stays in BinaryDir after it was stored and after
	// the last job that used it ended; 0 takes DefaultBinaryGrace.
	BinaryGrace time.Duration
	// CanCollect, if set, reports whether this node may delete shipped
	// programs no job uses: false while its metadata has not been in sync
	// with every alive member since it started (it may not know every
	// job). Nil: it may.
	CanCollect func() bool
	// FailedMembers, if set, returns how many members this node knows as
	// failed (dead, neither left nor given up on); shipped programs are
	// deleted only while more members are alive than that. Nil: none.
	FailedMembers func() int
	// BinCacheAge is how long a program in BinDir that no running job uses
	// stays after its last use on this node; 0 takes DefaultBinCacheAge.
	BinCacheAge time.Duration
	// BinCacheBytes bounds the programs in BinDir that no running job
	// uses; the least recently used go first. 0 takes
	// DefaultBinCacheBytes.
	BinCacheBytes int64
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Logs, if set, keeps each attempt's log (tasklog); the scheduler
	// removes a job's logs when its history is deleted.
	Logs *tasklog.Store
	// OnAttempt, if set, is told of every task attempt that ends on this
	// node, from the task's goroutine, concurrently; it must not block.
	OnAttempt func(Attempt)
	// OnJobEnd, if set, is told the final state of each job that ends
	// after this scheduler started, once, when this node learns of it
	// (every node tells of every job), from the reconcile loop, under the
	// scheduler's lock; it must not block or call the scheduler.
	OnJobEnd func(state string)
	// Workers runs the tasks of shipped jobs (JobRecord.Binary) in worker
	// processes of their programs, which are cached in BinDir. Nil: this
	// node refuses shipped jobs at submission and fails their tasks.
	Workers *worker.Pool
	// BinDir caches shipped programs, by SHA-256. Required with Workers.
	BinDir string
	// Speculation sets the straggler rule; the zero value is on, with the
	// defaults.
	Speculation Speculation
	// Outputs reserves output directories at submission. Nil writes job
	// records without a reservation: two jobs submitted at once with one
	// output may then both be accepted, so only a scheduler of one node may
	// omit it.
	Outputs OutputReserver
	// InlineSpecs, if set, reports whether every alive member reads a job
	// spec carried in its job record (JobRecord.SpecInline); a job whose
	// spec fits MaxInlineSpecBytes then has no spec block. Nil, or false
	// (a member of an older release is alive): every spec is a block.
	InlineSpecs func() bool
	// EvenReducers, if set, reports whether every alive member places a
	// job's partitions by the rule JobRecord.EvenReducers names; only then
	// is it set on a new job. Nil, or false: ring placement.
	EvenReducers func() bool
}

func (c *Config) validate() error {
	if c.Self == "" || c.Registry == nil || c.Records == nil || c.FS == nil || c.Shuffle == nil || c.Dialer == nil || c.Ring == nil || c.WorkDir == "" {
		return errors.New("scheduler: incomplete config")
	}
	if c.Workers != nil && c.BinDir == "" {
		return errors.New("scheduler: Workers without BinDir")
	}
	if c.Slots <= 0 {
		c.Slots = runtime.NumCPU()
	}
	if c.SortBuffer <= 0 {
		c.SortBuffer = shuffle.DefaultBufferBytes
	}
	if c.BinaryGrace <= 0 {
		c.BinaryGrace = DefaultBinaryGrace
	}
	if c.BinCacheAge < 0 || c.BinCacheBytes < 0 {
		return errors.New("scheduler: the program cache's age and size must not be negative")
	}
	if c.BinCacheAge == 0 {
		c.BinCacheAge = DefaultBinCacheAge
	}
	if c.BinCacheBytes == 0 {
		c.BinCacheBytes = DefaultBinCacheBytes
	}
	if c.ShuffleMemory == 0 {
		c.ShuffleMemory = DefaultShuffleMemory
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.JobHistory < 0 || c.JobHistoryAge < 0 {
		return errors.New("scheduler: job history must not be negative")
	}
	if c.JobHistory == 0 {
		c.JobHistory = DefaultJobHistory
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c.Speculation.validate()
}

// Scheduler is one node's part of every job.
type Scheduler struct {
	cfg   Config
	log   *slog.Logger
	slots chan struct{}
	kick  chan struct{}
	// shuffleMem counts the fetched segments reducers hold in memory.
	shuffleMem *byteBudget
	// sortBufs keeps the sort buffers of finished map tasks for the next
	// ones; the Run loop drops them when map tasks stop.
	sortBufs *bufferPool

	mu      sync.Mutex
	tasks   map[string]context.CancelCauseFunc // running tasks by job/kind/index
	waiting int                                // tasks waiting for a compute slot
	specs   map[string]*loadedSpec             // spec blocks by job ID
	jobs    map[string]*job.Job                // resolved jobs by ID
	cleaned map[string]bool                    // finished jobs whose local files are gone
	checked map[string]bool                    // jobs whose own map outputs were checked against disk
	own     map[string]*ownTasks               // this node's tasks record by job ID
	waits   map[string]*inputWait              // tasks waiting for their input, by task key
	wake    chan struct{}                      // closed and replaced on every change
	// placements holds each running job's task placement for the
	// membership it was computed for.
	placements map[string]*placement

	started time.Time

	// Stats counts for /metrics.
	Stats Stats

	binMu sync.Mutex // serializes fetches of shipped programs and the cache's pruning
	// binPins counts the submissions in progress here by program (under
	// mu): their programs stay in the cache.
	binPins map[string]int
	// binRepairing is set while repairBinaries stores programs again.
	binRepairing atomic.Bool

	// Owned by the Run goroutine.
	lastRetain time.Time
	lastBinGC  time.Time // the last pass of collectBinaries
	// lastBinCache is the last pass of pruneBinCache; binCacheDue asks
	// for one at once (a program's file record was deleted).
	lastBinCache time.Time
	binCacheDue  bool
	// active holds the jobs the loop reconciles: every job record's ID
	// once per Interval, and the job of every job, state or tasks record
	// that changes; a job leaves it when it has ended here or its record
	// is gone. So a pass costs the running jobs, not the job history.
	active   map[string]bool
	rings    ringCache
	stateAts map[string]stateAt // retain's decoded end times by job ID

	wg sync.WaitGroup
}

// New returns a scheduler; call Run.
func New(cfg Config) (*Scheduler, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Scheduler{
		cfg:        cfg,
		log:        cfg.Logger,
		slots:      make(chan struct{}, cfg.Slots),
		shuffleMem: &byteBudget{left: max(0, cfg.ShuffleMemory)},
		sortBufs:   &bufferPool{max: cfg.Slots},
		kick:       make(chan struct{}, 1),
		tasks:      map[string]context.CancelCauseFunc{},
		specs:      map[string]*loadedSpec{},
		jobs:       map[string]*job.Job{},
		cleaned:    map[string]bool{},
		checked:    map[string]bool{},
		own:        map[string]*ownTasks{},
		waits:      map[string]*inputWait{},
		wake:       make(chan struct{}),
		started:    time.Now(),
		active:     map[string]bool{},

		placements: map[string]*placement{},
		binPins:    map[string]int{},
	}, nil
}

// Kick asks for a reconcile pass soon, as after a membership change. It
// never blocks.
func (s *Scheduler) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// broadcast wakes every task waiting for records to change.
func (s *Scheduler) broadcast() {
	s.mu.Lock()
	close(s.wake)
	s.wake = make(chan struct{})
	s.mu.Unlock()
}

func (s *Scheduler) waitChan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wake
}

// Run reconciles every job until ctx ends, then cancels this node's tasks
// and waits for them.
func (s *Scheduler) Run(ctx context.Context) {
	changes, cancel := s.cfg.Records.Watch("")
	defer cancel()
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	s.cleanupOrphans()
	s.refreshActive()
	ends := s.newStateWatch()
	for {
		s.reconcileAll(ctx)
		select {
		case <-ctx.Done():
			s.mu.Lock()
			for _, c := range s.tasks {
				c(nil)
			}
			s.mu.Unlock()
			s.wg.Wait()
			s.sortBufs.drop()
			return
		case r, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
			// One pass for every change queued now, not one per change.
			jobChanged := s.noteChange(r, ends)
		drain:
			for {
				select {
				case r, ok := <-changes:
					if !ok {
						changes = nil
						break drain
					}
					jobChanged = s.noteChange(r, ends) || jobChanged
				default:
					break drain
				}
			}
			if jobChanged {
				s.broadcast()
			}
		case <-s.kick:
			s.broadcast()
		case <-tick.C:
			s.refreshActive()
			s.sortBufs.trim(time.Now())
		}
	}
}

// noteChange adds the job of a changed job, state or tasks record to the
// active set and reports whether r was one. A changed state record also
// goes through the rule for two ends of one job (stateChanged).
func (s *Scheduler) noteChange(r gossip.Record, ends *stateWatch) bool {
	if strings.HasPrefix(r.Key, statePrefix) {
		s.stateChanged(ends, r)
	}
	if r.Deleted && strings.HasPrefix(r.Key, blockstore.FileKeyPrefix+BinaryDir+"/") {
		s.binCacheDue = true // the cluster dropped a program: drop its copy here
	}
	id, ok := jobOfKey(r.Key)
	if ok && !r.Deleted {
		s.active[id] = true
	}
	return ok
}

// jobOfKey returns the job a job, state or tasks key belongs to (not
// taskstatus: no task waits on it).
func jobOfKey(k string) (string, bool) {
	for _, p := range []string{jobPrefix, statePrefix, tasksPrefix} {
		if rest, ok := strings.CutPrefix(k, p); ok {
			id, _, _ := strings.Cut(rest, "/")
			return id, true
		}
	}
	return "", false
}

// refreshActive adds every job the records hold that has not ended here.
func (s *Scheduler) refreshActive() {
	ids := s.jobIDs()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if !s.cleaned[id] {
			s.active[id] = true
		}
	}
}

// jobIDs lists every job the records know, oldest first.
func (s *Scheduler) jobIDs() []string {
	var ids []string
	for _, r := range s.cfg.Records.Scan(jobPrefix) {
		ids = append(ids, strings.TrimPrefix(r.Key, jobPrefix))
	}
	sort.Strings(ids)
	return ids
}

// alive lists the members that may take tasks: alive and, when the
// config says, usable.
func (s *Scheduler) alive() []string {
	m := s.cfg.Ring().Members()
	if s.cfg.Usable == nil {
		return m
	}
	return slices.DeleteFunc(slices.Clone(m), func(n string) bool { return !s.cfg.Usable(n) })
}

func (s *Scheduler) reconcileAll(ctx context.Context) {
	running := 0
	ids := make([]string, 0, len(s.active))
	for id := range s.active {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		if err := s.reconcile(ctx, id); err != nil {
			s.log.Warn("reconcile", "job", id, "err", err)
		}
		s.mu.Lock()
		ended := s.cleaned[id]
		s.mu.Unlock()
		if _, ok := s.cfg.Records.Get(jobPrefix + id); ended || !ok {
			delete(s.active, id)
		} else {
			running++
		}
	}
	s.Stats.RunningJobs.Store(int64(running))
	if now := time.Now(); now.Sub(s.lastRetain) >= s.cfg.Interval {
		s.lastRetain = now
		s.retain(ctx, now)
	}
}

// reconcile takes one step of one job: it builds the view and the
// placement, asks decide what to do, and applies the actions.
func (s *Scheduler) reconcile(ctx context.Context, id string) error {
	s.mu.Lock()
	ended := s.cleaned[id]
	s.mu.Unlock()
	if ended {
		return nil // nothing left to do here; skip reading its records
	}
	v, ok := loadView(s.cfg.Records, id)
	if !ok {
		return nil
	}
	if v.state != nil {
		s.finishLocal(id, v.state)
		return nil
	}
	if err := checkRecord(&v.rec); err != nil {
		return s.endJob(ctx, v, StateFailed, err.Error())
	}
	splits, err := s.jobSplits(ctx, v)
	if err != nil {
		return err
	}
	j, err := s.resolve(v)
	if err != nil {
		return s.endJob(ctx, v, StateFailed, err.Error())
	}
	alive := s.alive()
	live := v.live(alive)
	if len(live) == 0 {
		return nil
	}
	liveRing := s.rings.of(live)
	blocks := s.cfg.Ring()

	s.checkOwnMapOutputs(v)
	// This node's own record as the loop holds it is newer than the
	// store's copy (tasks that finished since the last flush).
	// Both under one lock: a task registers as running before it starts
	// and folds its result into the record before it unregisters, so this
	// snapshot never shows a finished task as neither done nor running.
	s.mu.Lock()
	own := s.ownOf(id)
	own.big = v.rec.NumSplits+v.rec.Reducers > bigJob
	v.nodes[s.cfg.Self] = own.t.clone()
	tooLarge := own.tooLarge
	running := map[string]bool{}
	for k := range s.tasks {
		if strings.HasPrefix(k, id+"/") {
			running[k] = true
		}
	}
	idle := s.cfg.Slots - len(s.slots) - s.waiting
	s.mu.Unlock()
	if tooLarge > 0 {
		return s.endJob(ctx, v, StateFailed, fmt.Sprintf("this job's progress on %s (its counters and tasks) needs a record of %d bytes, more than the metadata's limit of %d", s.cfg.Self, tooLarge, gossip.MaxValueLen))
	}

	runningMaps := 0
	for k := range running {
		if strings.HasPrefix(k, id+"/m/") {
			runningMaps++
		}
	}
	pl := s.placementOf(id, splits, v.rec.Reducers, v.rec.EvenReducers, blocks, live, liveRing)
	in := decideInput{
		v: v, self: s.cfg.Self, live: live,
		mappers:  pl.mappers,
		reducers: pl.reducers,
		running:  func(k taskKind, i int) bool { return running[taskKey(id, k, i)] },
		now:      time.Now().UnixMilli(),
		spec:     s.cfg.Speculation,
		idle:     idle,
		backups: func(k taskKind, i int) []string {
			if k == kindReduce {
				return reducerOrder(id, i, v.rec.EvenReducers, live, liveRing)
			}
			return backupsOf(id, splits[i], len(splits), blocks, live, liveRing)
		},
		// Enough queued map attempts to keep every slot busy between two
		// passes, never one goroutine per split.
		mapBudget: max(1, 2*s.cfg.Slots-runningMaps),
		ender:     liveRing.Owner(id),
		maxWait:   maxInputWait(&v.rec),
	}
	if runningMaps >= 2*s.cfg.Slots {
		in.mapBudget = -1
	}
	in.waits = s.waitsOf(id, in.mappers, in.reducers, alive, time.Now())
	defer s.flushOwn(id, false)
	for _, a := range decide(in) {
		k := itemKey{a.task, a.index}
		switch a.kind {
		case actRun:
			if a.backup {
				s.log.Info("starting a backup attempt of a straggler", "job", id, "task", taskName(a.task, a.index))
			}
			if a.task == kindMap {
				s.startMap(v, j, splits[a.index], a.attempt, a.backup)
			} else {
				s.startReduce(v, j, a.index, len(splits), a.attempt, a.backup)
			}
		case actKill:
			s.mu.Lock()
			if c, ok := s.tasks[taskKey(id, a.task, a.index)]; ok {
				c(errSuperseded)
			}
			s.mu.Unlock()
		case actCount, actUncount, actForget:
			s.mu.Lock()
			o := s.ownOf(id)
			switch a.kind {
			case actCount:
				o.count(k)
			case actUncount:
				o.uncount(k)
			default:
				o.forget(k)
			}
			s.mu.Unlock()
		case actEnd:
			s.flushOwn(id, true)
			if a.state == StateSucceeded {
				return s.succeed(ctx, v)
			}
			return s.endJob(ctx, v, a.state, a.msg)
		case actWait:
		}
	}
	return nil
}

func taskKey(id string, k taskKind, i int) string {
	if k == kindReduce {
		return id + "/r/" + strconv.Itoa(i)
	}
	return id + "/m/" + strconv.Itoa(i)
}

// checkOwnMapOutputs withdraws this node's map outputs that are no longer
// on disk (a wiped data dir), so the splits are mapped again; once per job
// after start.
func (s *Scheduler) checkOwnMapOutputs(v *view) {
	s.mu.Lock()
	done := s.checked[v.rec.ID]
	s.checked[v.rec.ID] = true
	var have []int
	if !done && !v.rec.MapOnly {
		s.ownOf(v.rec.ID).t.Maps.Each(func(i int) { have = append(have, i) })
	}
	s.mu.Unlock()
	for _, i := range have {
		if _, err := s.cfg.Shuffle.Segments(v.rec.ID, mapTaskID(i)); err != nil {
			s.log.Warn("map output lost; withdrawing it", "job", v.rec.ID, "task", mapTaskID(i), "err", err)
			s.mu.Lock()
			s.ownOf(v.rec.ID).withdraw(itemKey{kindMap, i})
			s.mu.Unlock()
		}
	}
}

// loadedSpec is a job's spec block as this node holds it.
type loadedSpec struct {
	params  map[string]string
	inputs  []InputFile
	splits  []split
	shipped *worker.Info // a shipped job's description
}

// rememberSpec caches the spec of a job this node just submitted.
func (s *Scheduler) rememberSpec(rec *JobRecord, ss []SpecSplit, shipped *worker.Info) {
	sp, err := splitsOf(rec, ss)
	if err != nil {
		return // fetched from the block when needed
	}
	s.mu.Lock()
	s.specs[rec.ID] = &loadedSpec{params: rec.Params, inputs: rec.Inputs, splits: sp, shipped: shipped}
	s.mu.Unlock()
}

// jobSplits returns the job's splits, fetching its spec block the first
// time (verified against its ID), and fills v.rec's Params and Inputs.
func (s *Scheduler) jobSplits(ctx context.Context, v *view) ([]split, error) {
	s.mu.Lock()
	ls, ok := s.specs[v.rec.ID]
	s.mu.Unlock()
	if !ok {
		var err error
		if ls, err = s.loadSpec(ctx, &v.rec); err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.specs[v.rec.ID] = ls
		s.mu.Unlock()
	}
	v.rec.Params, v.rec.Inputs = ls.params, ls.inputs
	return ls.splits, nil
}

func (s *Scheduler) loadSpec(ctx context.Context, rec *JobRecord) (*loadedSpec, error) {
	name := "job spec " + rec.Spec.Short()
	b := rec.SpecInline
	if len(b) > 0 {
		name = "job spec in the job record"
		if !rec.Spec.IsZero() {
			return nil, fmt.Errorf("job %s names both a spec block and a spec in its record", rec.ID)
		}
	} else {
		var err error
		if b, err = s.cfg.FS.ReadBlob(ctx, rec.Spec, rec.Replication, MaxSpecBytes+int64(len(specMagic))); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	spec, err := decodeSpec(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if spec.JobID != rec.ID {
		return nil, fmt.Errorf("%s belongs to job %q, not %s", name, spec.JobID, rec.ID)
	}
	r := *rec
	r.Params, r.Inputs = spec.Params, spec.Inputs
	sp, err := splitsOf(&r, spec.Splits)
	if err != nil {
		return nil, err
	}
	if len(sp) != rec.NumSplits {
		return nil, fmt.Errorf("%s lists %d splits, the job record %d", name, len(sp), rec.NumSplits)
	}
	if (rec.Binary != "") != (spec.Shipped != nil) {
		return nil, fmt.Errorf("%s does not match the job record: a shipped program without a job description, or one the other way round", name)
	}
	return &loadedSpec{params: spec.Params, inputs: spec.Inputs, splits: sp, shipped: spec.Shipped}, nil
}

// ReferencedBlocks lists the spec blocks of the jobs that have not ended,
// which the block repair loop keeps like file blocks.
func (s *Scheduler) ReferencedBlocks() []blockstore.BlobRef {
	var out []blockstore.BlobRef
	for _, r := range s.cfg.Records.Scan(jobPrefix) {
		id := strings.TrimPrefix(r.Key, jobPrefix)
		if st, ok := s.cfg.Records.Get(statePrefix + id); ok && !st.Deleted {
			continue
		}
		var rec JobRecord
		if decode(r.Value, &rec) == nil && !rec.Spec.IsZero() {
			out = append(out, blockstore.BlobRef{ID: rec.Spec, Replication: rec.Replication})
		}
	}
	return out
}

func (s *Scheduler) resolve(v *view) (*job.Job, error) {
	s.mu.Lock()
	j, ok := s.jobs[v.rec.ID]
	s.mu.Unlock()
	if ok {
		return j, nil
	}
	var err error
	if v.rec.Binary != "" {
		s.mu.Lock()
		ls := s.specs[v.rec.ID]
		s.mu.Unlock()
		if ls == nil || ls.shipped == nil {
			return nil, fmt.Errorf("job %s: its spec does not describe the shipped job", v.rec.ID)
		}
		j, err = s.shippedJob(&v.rec, *ls.shipped)
	} else {
		j, err = s.cfg.Registry.Resolve(v.rec.Name, v.rec.Params)
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.jobs[v.rec.ID] = j
	s.mu.Unlock()
	return j, nil
}

// succeed writes the _SUCCESS marker (the same empty file whoever writes
// it) and then the job's final state.
func (s *Scheduler) succeed(ctx context.Context, v *view) error {
	if err := checkCounters(v.counters(s.liveOf(v))); err != nil {
		return s.endJob(ctx, v, StateFailed, err.Error())
	}
	_, err := s.cfg.FS.Create(ctx, v.rec.Output+"/_SUCCESS", strings.NewReader(""), blockstore.CreateOptions{
		BlockSize: blockstore.MinBlockSize, Replication: v.rec.Replication, Overwrite: true,
	})
	if err != nil {
		return fmt.Errorf("write _SUCCESS: %w", err)
	}
	return s.endJob(ctx, v, StateSucceeded, "")
}

// endJob writes the job's final state, unless one is already there.
func (s *Scheduler) endJob(ctx context.Context, v *view, state, msg string) error {
	if r, ok := s.cfg.Records.Get(statePrefix + v.rec.ID); ok && !r.Deleted {
		return nil
	}
	st := v.summary(state, msg, s.cfg.Self, time.Now(), s.liveOf(v))
	if _, err := s.cfg.Records.Put(statePrefix+v.rec.ID, fitState(st)); err != nil {
		return err
	}
	s.log.Info("job ended", "job", v.rec.ID, "state", state, "err", msg)
	s.finishLocal(v.rec.ID, &st)
	return nil
}

// finishLocal stops this node's tasks of an ended job and removes its
// intermediate files, once, and tells OnJobEnd of a job that ended since
// this scheduler started.
func (s *Scheduler) finishLocal(id string, st *StateRecord) {
	s.mu.Lock()
	if s.cleaned[id] {
		s.mu.Unlock()
		return
	}
	s.cleaned[id] = true
	if s.cfg.OnJobEnd != nil && st != nil && st.At >= s.started.UnixNano() {
		s.cfg.OnJobEnd(st.State)
	}
	var cancels []context.CancelCauseFunc
	for k, c := range s.tasks {
		if strings.HasPrefix(k, id+"/") {
			cancels = append(cancels, c)
		}
	}
	delete(s.specs, id)
	delete(s.jobs, id)
	delete(s.placements, id)
	if s.cfg.Workers != nil {
		s.cfg.Workers.CloseJob(id)
	}
	for k := range s.waits {
		if strings.HasPrefix(k, id+"/") {
			delete(s.waits, k)
		}
	}
	if o, ok := s.own[id]; ok {
		o.close()
		delete(s.own, id)
	}
	s.mu.Unlock()
	for _, c := range cancels {
		c(nil)
	}
	// The job's summary holds what this record said.
	if _, ok := s.cfg.Records.Get(keyJoin(tasksPrefix+id, s.cfg.Self)); ok {
		s.cfg.Records.Delete(keyJoin(tasksPrefix+id, s.cfg.Self))
	}
	// Tasks remove their own partial files as they stop; the job dir goes
	// once they have.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.waitTasks(id)
		if err := s.cfg.Shuffle.RemoveJob(id); err != nil {
			s.log.Warn("remove intermediate files", "job", id, "err", err)
		}
		if validJobID(id) {
			os.RemoveAll(filepath.Join(s.cfg.WorkDir, id))
		}
	}()
}

// waitTasks waits until no task of the job is registered.
func (s *Scheduler) waitTasks(id string) {
	for {
		s.mu.Lock()
		busy := false
		for k := range s.tasks {
			if strings.HasPrefix(k, id+"/") {
				busy = true
			}
		}
		wake := s.wake
		s.mu.Unlock()
		if !busy {
			return
		}
		<-wake
	}
}

// cleanupOrphans removes intermediate files of jobs that ended (or that
// the records no longer know) while this node was down.
func (s *Scheduler) cleanupOrphans() {
	ids, err := s.cfg.Shuffle.Jobs()
	if err != nil {
		return
	}
	for _, id := range ids {
		v, ok := loadView(s.cfg.Records, id)
		if !ok || v.state != nil {
			s.cfg.Shuffle.RemoveJob(id)
		}
	}
}

// register records an attempt of task k of job id as running here unless
// one already is, in the loop's view and in this node's tasks record; it
// returns the attempt's context, which a kill cancels with errSuperseded.
func (s *Scheduler) register(id string, k itemKey, attempt int, backup bool) (context.Context, bool) {
	key := taskKey(id, k.k, k.i)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tasks[key]; ok || s.cleaned[id] {
		return nil, false
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	s.tasks[key] = cancel
	s.ownOf(id).started(k, time.Now().UnixMilli(), attempt, backup)
	s.wg.Add(1)
	return ctx, true
}

// stopped settles an attempt whose context ended before it did: killed
// (another attempt won) or interrupted (job ended, node stopping).
func (s *Scheduler) stopped(ctx context.Context, id string, k itemKey, launched bool) {
	s.taskStopped(id, k, errors.Is(context.Cause(ctx), errSuperseded), launched)
}

func (s *Scheduler) unregister(key string) {
	s.mu.Lock()
	if c, ok := s.tasks[key]; ok {
		c(nil)
		delete(s.tasks, key)
	}
	s.mu.Unlock()
	s.wg.Done()
	s.broadcast()
	s.Kick()
}

// acquire takes a compute slot, or fails when ctx ends first.
func (s *Scheduler) acquire(ctx context.Context) error {
	s.mu.Lock()
	s.waiting++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.waiting--
		s.mu.Unlock()
	}()
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Scheduler) release() { <-s.slots }

// liveOf is v.live for the current membership.
func (s *Scheduler) liveOf(v *view) []string { return v.live(s.alive()) }

// ringCache keeps the ring of the last member list asked for: building
// one sorts its virtual nodes, and the loop asks for the same ring on
// every pass. Owned by the Run goroutine.
type ringCache struct {
	members []string
	r       *ring.Ring
}

func (c *ringCache) of(members []string) *ring.Ring {
	if c.r == nil || !slices.Equal(c.members, members) {
		c.members, c.r = slices.Clone(members), ring.New(ring.Config{}, members...)
	}
	return c.r
}

// placement is where a job's tasks run for one membership: mappers[i]
// maps split i, reducers[p] reduces partition p.
type placement struct {
	live, blocks      []string
	mappers, reducers []string
}

// placementOf returns the job's placement for the live participants and
// the block ring, computing it only when either changed: a pass over a
// job of 100,000 splits would otherwise hash every split each time.
func (s *Scheduler) placementOf(id string, splits []split, reducers int, even bool, blocks *ring.Ring, live []string, liveRing *ring.Ring) *placement {
	members := blocks.Members()
	s.mu.Lock()
	pl, ok := s.placements[id]
	s.mu.Unlock()
	if ok && slices.Equal(pl.live, live) && slices.Equal(pl.blocks, members) && len(pl.mappers) == len(splits) && len(pl.reducers) == reducers {
		return pl
	}
	pl = &placement{live: slices.Clone(live), blocks: slices.Clone(members), mappers: make([]string, len(splits)), reducers: make([]string, reducers)}
	for i, sp := range splits {
		pl.mappers[i] = mapperOf(id, sp, len(splits), blocks, live, liveRing)
	}
	pl.reducers = reducersOf(id, reducers, even, live, liveRing)
	s.mu.Lock()
	s.placements[id] = pl
	s.mu.Unlock()
	return pl
}

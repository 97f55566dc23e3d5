package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/client"
	"shoal.dev/shoal/codec"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/shuffle"
	"shoal.dev/shoal/worker"
)

// DefaultMaxAttempts is how often a task's code may fail before its job
// fails.
const DefaultMaxAttempts = 4

// SubmitRequest asks for a job; its one definition is the light client's,
// which programs import without the engine.
type SubmitRequest = client.SubmitRequest

// Task timeout bounds (SubmitRequest.TaskTimeout).
const (
	// DefaultTaskTimeout is Hadoop's mapreduce.task.timeout default.
	DefaultTaskTimeout = 10 * time.Minute
	MinTaskTimeout     = time.Second
	MaxTaskTimeout     = 7 * 24 * time.Hour
)

// ParseTaskTimeout checks a SubmitRequest.TaskTimeout and returns the
// timeout it means (0: none).
func ParseTaskTimeout(s string) (time.Duration, error) {
	if s == "" {
		return DefaultTaskTimeout, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if n, aerr := strconv.ParseInt(s, 10, 64); aerr == nil && n == 0 {
			return 0, nil
		}
		return 0, badRequest("task timeout %q: want a duration such as 10m or 90s, or 0 for none", s)
	}
	switch {
	case d == 0:
		return 0, nil
	case d < MinTaskTimeout || d > MaxTaskTimeout:
		return 0, badRequest("task timeout %s: want 0 (none) or between %s and %s", d, MinTaskTimeout, MaxTaskTimeout)
	}
	return d, nil
}

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// Submit validates a request and writes the job record; every node then
// takes its part. Nothing is written when the request is invalid.
func (s *Scheduler) Submit(ctx context.Context, req SubmitRequest) (JobRecord, error) {
	if req.Reducers < 0 || req.MaxAttempts < 0 || req.Replication < 0 {
		return JobRecord{}, badRequest("reducers, max attempts and replication must not be negative")
	}
	if err := checkParams(req.Params); err != nil {
		return JobRecord{}, err
	}
	timeout, err := ParseTaskTimeout(req.TaskTimeout)
	if err != nil {
		return JobRecord{}, err
	}
	outCodec, err := codec.Parse(req.OutputCompression)
	if err != nil {
		return JobRecord{}, fmt.Errorf("%w: output compression: %w", ErrBadRequest, err)
	}
	shuffleCodec, err := parseShuffleCodec(req.MapOutputCompression)
	if err != nil {
		return JobRecord{}, err
	}
	if err := checkShape(req.Reducers, 0, req.MaxAttempts, "", ""); err != nil {
		return JobRecord{}, err
	}
	var j0 *job.Job
	var shipped *worker.Info
	if req.Binary != "" {
		// The program stays in this node's cache while it is checked,
		// and the job record, once written, keeps it there.
		defer s.pinBinary(req.Binary)()
		if shipped, err = s.describeShipped(ctx, req); err != nil {
			return JobRecord{}, err
		}
		if j0, err = s.shippedJob(&JobRecord{Binary: req.Binary}, *shipped); err != nil {
			return JobRecord{}, err
		}
	} else if j0, err = s.cfg.Registry.Resolve(req.Name, req.Params); err != nil {
		return JobRecord{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	switch {
	case j0.Generate > 0 && len(req.Inputs) > 0:
		return JobRecord{}, badRequest("%s generates its input; give it no --input", req.Name)
	case j0.Generate == 0 && len(req.Inputs) == 0:
		return JobRecord{}, badRequest("no input: give --input")
	}
	out, err := blockstore.CleanPath(req.Output, true)
	if err != nil || out == "/" {
		if err == nil {
			err = errors.New("the root cannot be an output")
		}
		return JobRecord{}, fmt.Errorf("%w: output: %w", ErrBadRequest, err)
	}
	if _, err := s.cfg.FS.List(out); err == nil {
		return JobRecord{}, badRequest("output %s already exists", out)
	}
	res, err := s.reserveOutput(ctx, out)
	if err != nil {
		return JobRecord{}, err
	}
	if res != nil {
		defer res.Release()
	}
	inputs, err := s.resolveInputs(req.Inputs)
	if err != nil {
		return JobRecord{}, err
	}
	tasks := j0.Generate
	for _, f := range inputs {
		tasks += f.Blocks
	}
	if err := checkShape(j0.NumReducers(req.Reducers), tasks, req.MaxAttempts, out, outCodec.Ext()); err != nil {
		return JobRecord{}, err
	}
	// Prepare (terasort's sampling) runs here, once, on the inputs.
	probe := &JobRecord{Inputs: inputs}
	sampler := job.SamplerFunc(func(ctx context.Context, splits, perSplit int) ([][]byte, error) {
		return s.sample(ctx, probe, j0.Input, splits, perSplit)
	})
	j, params := j0, map[string]string(nil)
	if shipped != nil && shipped.Prepare {
		if shipped, err = s.prepareShipped(ctx, req, sampler); err != nil {
			return JobRecord{}, err
		}
		if j, err = s.shippedJob(&JobRecord{Binary: req.Binary}, *shipped); err != nil {
			return JobRecord{}, err
		}
	}
	if shipped != nil {
		params = shipped.Params
	} else if j, params, err = s.cfg.Registry.ResolvePrepared(ctx, req.Name, req.Params, sampler, req.Reducers); err != nil {
		return JobRecord{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	reducers := j.NumReducers(req.Reducers)
	attempts := req.MaxAttempts
	if attempts == 0 {
		attempts = DefaultMaxAttempts
	}
	members := s.alive()
	if len(members) == 0 {
		if s.cfg.Ring().Len() > 0 {
			return JobRecord{}, errors.New("no member can take tasks: every alive member is unhealthy or low on disk (see `shoal members`)")
		}
		return JobRecord{}, errors.New("no alive members")
	}
	repl := req.Replication
	if repl == 0 {
		repl = blockstore.DefaultReplication
	}
	repl = min(repl, len(members))
	rec := JobRecord{
		ID:                   newJobID(time.Now()),
		Name:                 req.Name,
		Output:               out,
		Reducers:             reducers,
		MapOnly:              j.MapOnly,
		Generate:             j.Generate,
		MaxAttempts:          attempts,
		Replication:          repl,
		Participants:         members,
		SubmittedBy:          s.cfg.Self,
		SubmittedAt:          time.Now().UnixNano(),
		InputFiles:           len(inputs),
		TaskTimeout:          int64(timeout),
		NoSpeculativeMaps:    req.NoSpeculativeMaps,
		NoSpeculativeReduces: req.NoSpeculativeReduces,
		Params:               params,
		Inputs:               inputs,
		Binary:               req.Binary,
		OutputCodec:          string(outCodec),
		ShuffleCodec:         shuffleCodec,
	}
	pk := packing{pack: j.PackInputs && req.MaxSplitBytes >= 0, maxBytes: req.MaxSplitBytes}
	if pk.maxBytes == 0 {
		pk.maxBytes = DefaultMaxSplitBytes
	}
	if r := s.cfg.Ring(); r != nil {
		pk.owner = func(id string, repl int) string {
			if o := r.Owners(id, repl); len(o) > 0 {
				return o[0]
			}
			return ""
		}
	}
	ss, err := specSplits(ctx, s.cfg.FS, inputs, pk)
	if err != nil {
		return JobRecord{}, fmt.Errorf("input splits: %w", err)
	}
	probeSplits, err := splitsOf(&JobRecord{Inputs: inputs}, ss)
	if err != nil {
		return JobRecord{}, fmt.Errorf("input splits: %w", err)
	}
	rec.NumSplits = j.Generate + len(probeSplits)
	for _, f := range inputs {
		rec.InputBytes += f.Size
	}
	spec := encodeSpec(JobSpec{JobID: rec.ID, Params: params, Inputs: inputs, Splits: ss, Shipped: shipped})
	if len(spec) > MaxSpecBytes {
		return JobRecord{}, badRequest("the job's inputs (%d files, %d splits) need a spec of %d bytes, more than the limit of %d", len(inputs), len(ss), len(spec), MaxSpecBytes)
	}
	if len(spec) <= MaxInlineSpecBytes && s.cfg.InlineSpecs != nil && s.cfg.InlineSpecs() {
		rec.SpecInline = spec // replicated with the record: no block to write first
	} else if rec.Spec, err = s.cfg.FS.PutBlob(ctx, spec, repl); err != nil {
		return JobRecord{}, fmt.Errorf("store job spec: %w", err)
	}
	rec.SpecBytes = len(spec)
	rec.EvenReducers = s.cfg.EvenReducers != nil && s.cfg.EvenReducers()
	s.rememberSpec(&rec, ss, shipped)
	if rec.Binary != "" {
		// Before the record, which starts the tasks that fetch it: they
		// would fail their attempts while it is stored again.
		s.keepProgram(ctx, rec.Binary, "a newly submitted")
	}
	if err := s.writeJobRecord(ctx, res, jobPrefix+rec.ID, encode(rec)); err != nil {
		return JobRecord{}, err
	}
	if rec.Binary != "" {
		// And after: a pass of the clean-up that read the job records
		// just before this one reached it may delete it still.
		s.keepProgram(ctx, rec.Binary, "a newly submitted")
	}
	s.log.Info("job submitted", "job", rec.ID, "name", rec.Name, "splits", rec.Splits(), "reducers", rec.Reducers, "output", rec.Output)
	s.Kick()
	return rec, nil
}

// sample reads the keys of the first perSplit records of up to splits
// input splits spread evenly over the job's input.
func (s *Scheduler) sample(ctx context.Context, rec *JobRecord, format job.InputFormat, splits, perSplit int) ([][]byte, error) {
	all, err := computeSplits(ctx, s.cfg.FS, rec, packing{})
	if err != nil {
		return nil, err
	}
	var keys [][]byte
	for _, i := range job.SampleSplits(len(all), splits) {
		in, base, _, closeIn, err := openSplit(ctx, s.cfg.FS, all[i].parts[0])
		if err != nil {
			return nil, fmt.Errorf("sample split %d: %w", i, err)
		}
		ks, err := job.ReadSample(ctx, in, format, base, perSplit)
		closeIn()
		if err != nil {
			return nil, fmt.Errorf("sample split %d: %w", i, err)
		}
		keys = append(keys, ks...)
	}
	return keys, nil
}

// resolveInputs expands files, directories and globs into input files, in
// the order given (each directory's and glob's files sorted by path), each
// at most once.
func (s *Scheduler) resolveInputs(specs []string) ([]InputFile, error) {
	var out []InputFile
	seen := map[string]bool{}
	add := func(f blockstore.FileInfo) {
		if !seen[f.Path] {
			seen[f.Path] = true
			out = append(out, InputFile{Path: f.Path, Manifest: f.Manifest, Size: f.Size, Blocks: f.Blocks, BlockSize: f.BlockSize, Replication: f.Replication})
		}
	}
	for _, spec := range specs {
		if strings.ContainsAny(spec, "*?[") {
			files, err := s.cfg.FS.Glob(spec)
			if err != nil {
				return nil, fmt.Errorf("%w: input %s: %w", ErrBadRequest, spec, err)
			}
			for _, f := range files {
				add(f)
			}
			continue
		}
		if f, err := s.cfg.FS.Stat(spec); err == nil {
			add(f)
			continue
		} else if !errors.Is(err, blockstore.ErrIsDir) {
			return nil, fmt.Errorf("%w: input %s: %w", ErrBadRequest, spec, err)
		}
		dir, _ := blockstore.CleanPath(spec, true)
		var below []blockstore.FileInfo
		for _, f := range s.cfg.FS.Files() {
			if strings.HasPrefix(f.Path, dir+"/") && !strings.Contains(f.Path[len(dir)+1:], "/_") && !strings.HasPrefix(f.Path[len(dir)+1:], "_") {
				below = append(below, f)
			}
		}
		sort.Slice(below, func(i, j int) bool { return below[i].Path < below[j].Path })
		for _, f := range below {
			add(f)
		}
	}
	return out, nil
}

// Status is what any node reports about a job.
type Status struct {
	JobRecord
	State       string       `json:"state"`
	Error       string       `json:"error,omitempty"`
	Maps        int          `json:"maps"`
	MapsDone    int          `json:"maps_done"`
	ReducesDone int          `json:"reduces_done"`
	Counters    job.Counters `json:"counters"`
	EndedAt     int64        `json:"ended_at_unix_ns,omitempty"`
	// Note: another end of the job that this one overrode (StateRecord.Note).
	Note string `json:"note,omitempty"`
	// TaskStatus holds the status lines tasks' code reported, by task ID.
	TaskStatus map[string]string `json:"task_status,omitempty"`
	// Nodes is each node's part, once the job ended.
	Nodes map[string]NodeSummary `json:"nodes,omitempty"`
}

// MapProgress is the fraction of maps done, 0 to 1.
func (st Status) MapProgress() float64 {
	if st.Maps == 0 {
		return 1
	}
	return float64(st.MapsDone) / float64(st.Maps)
}

// ReduceProgress is the fraction of reduces done, 0 to 1.
func (st Status) ReduceProgress() float64 {
	if st.Reducers == 0 {
		return st.MapProgress()
	}
	return float64(st.ReducesDone) / float64(st.Reducers)
}

// Status reports a job from this node's records.
func (s *Scheduler) Status(id string) (Status, error) {
	if !validJobID(id) {
		return Status{}, fmt.Errorf("%w %q", ErrNoJob, id)
	}
	v, ok := loadView(s.cfg.Records, id)
	if !ok {
		return Status{}, fmt.Errorf("%w %q", ErrNoJob, id)
	}
	splits := v.rec.Splits()
	st := Status{JobRecord: v.rec, State: StateRunning, Maps: splits}
	live := v.live(s.alive())
	maps, commits := v.mapsAccepted(live), v.commitsAll()
	st.MapsDone, st.ReducesDone = maps.countBelow(splits), commits.countBelow(v.rec.Reducers)
	st.Counters = v.counters(live)
	for _, r := range s.cfg.Records.Scan(taskStatusPrefix + id + "/") {
		if st.TaskStatus == nil {
			st.TaskStatus = map[string]string{}
		}
		st.TaskStatus[strings.TrimPrefix(r.Key, taskStatusPrefix+id+"/")] = string(r.Value)
	}
	if v.state != nil {
		st.State, st.Error, st.EndedAt, st.Nodes, st.Note = v.state.State, v.state.Error, v.state.At, v.state.Nodes, v.state.Note
		if v.state.Counters != nil {
			st.Counters = v.state.Counters
		}
		// The summary holds the progress once the tasks records are gone.
		st.MapsDone, st.ReducesDone = max(st.MapsDone, v.state.MapsDone), max(st.ReducesDone, v.state.ReducesDone)
	}
	return st, nil
}

// List reports every job, newest first.
func (s *Scheduler) List() []Status {
	ids := s.jobIDs()
	out := make([]Status, 0, len(ids))
	for i := len(ids) - 1; i >= 0; i-- {
		if st, err := s.Status(ids[i]); err == nil {
			out = append(out, st)
		}
	}
	return out
}

// ListPage returns the statuses of at most limit jobs, newest first,
// beginning with the newest job older than after ("" for the newest of
// all), with the after of the next page ("" when no older job remains)
// and how many jobs there are. It reads the page's jobs only.
func (s *Scheduler) ListPage(after string, limit int) (page []Status, next string, total int) {
	ids := s.jobIDs()
	i := len(ids) - 1
	if after != "" {
		i = sort.SearchStrings(ids, after) - 1
	}
	page = []Status{}
	for ; i >= 0 && len(page) < limit; i-- {
		if st, err := s.Status(ids[i]); err == nil {
			page = append(page, st)
		}
	}
	if i >= 0 {
		next = ids[i+1]
	}
	return page, next, len(ids)
}

// Kill ends a running job: every node stops its tasks and removes its
// intermediate files.
func (s *Scheduler) Kill(id string) (Status, error) {
	st, err := s.Status(id)
	if err != nil {
		return Status{}, err
	}
	if st.State != StateRunning {
		return st, badRequest("job %s already %s", id, st.State)
	}
	v, _ := loadView(s.cfg.Records, id)
	if err := s.endJob(context.Background(), v, StateKilled, "killed by request"); err != nil {
		return Status{}, err
	}
	s.Kick()
	return s.Status(id)
}

// DefaultShuffleCodec is the map output compression of a job that names
// none: S2, which on BenchmarkShuffleCompression (README, Shuffle
// compression) sent terasort's map output in 0.39 of the bytes and ran
// both terasort and wordcount faster than plain on this machine.
const DefaultShuffleCodec = shuffle.CodecS2

// parseShuffleCodec checks a SubmitRequest.MapOutputCompression and
// returns the job record's ShuffleCodec.
func parseShuffleCodec(s string) (string, error) {
	switch s {
	case "":
		return DefaultShuffleCodec, nil
	case "none":
		return "", nil
	case shuffle.CodecS2, shuffle.CodecZstd:
		return s, nil
	}
	return "", badRequest("map output compression %q: want s2, zstd or none", s)
}

// Wire is the status as the API answers it (package client's JobStatus).
func (st Status) Wire() client.JobStatus {
	w := client.JobStatus{
		ID: st.ID, Name: st.Name, Output: st.Output, Reducers: st.Reducers, MapOnly: st.MapOnly,
		Generate: st.Generate, MaxAttempts: st.MaxAttempts, Replication: st.Replication,
		Participants: st.Participants, SubmittedBy: st.SubmittedBy, SubmittedAt: st.SubmittedAt,
		Spec: st.specName(), OutputCompression: st.OutputCodec, MapOutputCompression: st.ShuffleCodec,
		SpecBytes: st.SpecBytes, Splits: st.NumSplits, InputFiles: st.InputFiles, InputBytes: st.InputBytes,
		TaskTimeout: st.TaskTimeout, Binary: st.Binary,
		NoSpeculativeMaps: st.NoSpeculativeMaps, NoSpeculativeReduces: st.NoSpeculativeReduces,
		State: st.State, Error: st.Error, Maps: st.Maps, MapsDone: st.MapsDone, ReducesDone: st.ReducesDone,
		Counters: st.Counters, EndedAt: st.EndedAt, Note: st.Note, TaskStatus: st.TaskStatus,
	}
	if st.Nodes != nil {
		w.Nodes = make(map[string]client.NodeSummary, len(st.Nodes))
		for n, s := range st.Nodes {
			w.Nodes[n] = client.NodeSummary(s)
		}
	}
	return w
}

// specName is the ID of the job's spec block, or "" when the spec is in
// the job record.
func (st Status) specName() string {
	if st.Spec.IsZero() {
		return ""
	}
	return st.Spec.String()
}

// WireList is Wire of each status.
func WireList(sts []Status) []client.JobStatus {
	out := make([]client.JobStatus, len(sts))
	for i, st := range sts {
		out[i] = st.Wire()
	}
	return out
}

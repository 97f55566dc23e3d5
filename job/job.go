// Package job is Shoal's user-facing job API: the Mapper, Reducer (combiners
// are Reducers too) and Partitioner interfaces, the record readers and the
// output record format, Hadoop-named counters, the Registry of named jobs, and
// RunSequential, the one-process reference run that every distributed run of
// a job must match byte for byte.
//
// A job is Go code registered by name in the binary: every node runs the same
// binary, so a job travels through the cluster as a name plus string
// parameters (see Spec and Registry). The package imports nothing else of
// Shoal's and holds no mutable package-level state, so many nodes can run in
// one test binary.
//
// # Contracts for user code
//
// One Mapper (or Reducer) value serves one task and is called from one
// goroutine at a time; different tasks may run concurrently, each with its
// own value built by Job.NewMapper (or NewReducer, NewCombiner). Slices passed
// to Map, Reduce and Values.Next are owned by the caller and valid only during
// the call (or until the next Values.Next): copy what you keep. Emitters copy
// what they are given before returning, so user code may reuse its buffers.
// Shoal's sort order is bytewise on the key, then bytewise on the value:
// a reducer sees its key groups in key order and the values of a group in
// value order. A combiner may see values in any order and may run zero, one
// or many times on any subset of a key's values; it must not change the
// result.
//
// One driver runs every task, sequential or distributed: RunMapTask and
// RunReduceTask build the user's value, call it through CallSafely (a
// panic fails the task, not the node), abort an Aborter when the task is
// cancelled or fails, Close a Closer after the last successful call, and
// collect a CounterSource's counters. A constructor that returns neither a
// value nor an error fails the task.
//
// # Failures
//
// An error from user code fails the task's attempt; the distributed runner
// tries the task again, up to the job's attempt limit, and then fails the
// job with the last error. Return Permanent(err) (a *PermanentError) for a
// failure no retry can change — the input is not what the job needs, a
// parameter turns out invalid at run time — and the job fails at once with
// err's message. The built-in jobs do so (teravalidate's misorder and
// checksum mismatch). The driver marks the failures of user code as
// *UserError; a failure outside it (reading the input, writing the output,
// a full disk), even one that user code passed on from Emit, is not one:
// runners count those separately (see the scheduler).
package job

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Emitter receives output pairs. Implementations copy key and value before
// returning, so callers may reuse their buffers. Emit is not safe for
// concurrent use unless an implementation says so.
type Emitter interface {
	Emit(key, value []byte) error
}

// EmitterFunc adapts a function to Emitter. The function must honour
// Emitter's contract: copy key and value if it keeps them.
type EmitterFunc func(key, value []byte) error

// Emit calls f(key, value).
func (f EmitterFunc) Emit(key, value []byte) error { return f(key, value) }

// Values iterates the values of one key group. The returned slice is valid
// only until the next call and must not be modified. Once Next returns
// ok == false it keeps doing so.
type Values interface {
	Next() (value []byte, ok bool)
}

// Mapper turns one input record into zero or more intermediate pairs.
// key and value are valid only during the call. An error fails the task.
type Mapper interface {
	Map(key, value []byte, out Emitter) error
}

// MapperFunc adapts a function to Mapper.
type MapperFunc func(key, value []byte, out Emitter) error

// Map calls f(key, value, out).
func (f MapperFunc) Map(key, value []byte, out Emitter) error { return f(key, value, out) }

// Reducer turns one key and its group of values into zero or more output
// pairs. Combiners are Reducers too; their output becomes reducer input, so a
// combiner emits pairs of the mapper's output kind. key is valid only during
// the call. An error fails the task.
type Reducer interface {
	Reduce(key []byte, values Values, out Emitter) error
}

// ReducerFunc adapts a function to Reducer.
type ReducerFunc func(key []byte, values Values, out Emitter) error

// Reduce calls f(key, values, out).
func (f ReducerFunc) Reduce(key []byte, values Values, out Emitter) error {
	return f(key, values, out)
}

// Partitioner picks the reduce partition of an intermediate key: a value in
// [0, partitions). partitions is at least 1. It must be a pure function of
// its arguments (the same on every node, in every attempt), and it may be
// called concurrently from different tasks.
type Partitioner interface {
	Partition(key []byte, partitions int) int
}

// PartitionerFunc adapts a function to Partitioner.
type PartitionerFunc func(key []byte, partitions int) int

// Partition calls f(key, partitions).
func (f PartitionerFunc) Partition(key []byte, partitions int) int { return f(key, partitions) }

// Closer is optionally implemented by a Mapper or Reducer that keeps state
// across records: Close(out) is called once at the end of its task, after
// the last Map or Reduce call and only if all of them succeeded, so it can
// flush what it holds. An error fails the task. A combiner is never
// closed: it runs on parts of a task's output (each spill), any number of
// times, so it must not hold state across Reduce calls.
type Closer interface {
	Close(out Emitter) error
}

// HashPartitioner is the default Partitioner: the 32-bit FNV-1a hash of the
// key bytes, modulo partitions. It is part of Shoal's contract: it never
// changes across processes, platforms or releases, so a partition's contents
// are the same wherever and whenever a job runs. For partitions < 1 it
// returns 0.
var HashPartitioner Partitioner = hashPartitioner{}

type hashPartitioner struct{}

const (
	fnvOffset32 = 2166136261
	fnvPrime32  = 16777619
)

func (hashPartitioner) Partition(key []byte, partitions int) int {
	if partitions <= 1 {
		return 0
	}
	h := uint32(fnvOffset32)
	for _, c := range key {
		h ^= uint32(c)
		h *= fnvPrime32
	}
	return int(uint64(h) % uint64(partitions))
}

// TaskInfo describes the task a Mapper, Reducer or combiner is built for.
type TaskInfo struct {
	// JobID is the job's ID.
	JobID string
	// TaskID names the task: MapTaskID(n) ("m-000003") for map tasks and
	// their combiners, ReduceTaskID(p) ("r-00001") for reduce tasks.
	TaskID string
	// Attempt counts the task's attempts from 0.
	Attempt int
	// InputFile is, for map tasks, the input file's path in the cluster
	// file system. Empty for reduce tasks and for the map tasks of a
	// generator job (Job.Generate).
	InputFile string
	// Partition is, for reduce tasks, the partition reduced. 0 for map tasks.
	Partition int
	// Params are the job's parameters, defaults filled in. Each task gets
	// its own copy.
	Params map[string]string
	// WorkDir is a directory private to this task attempt, holding a copy of
	// every file in Job.Files (mode 0755); the runner removes it after the
	// task. Empty when the job ships no files.
	WorkDir string
	// Log, if not nil, is the attempt's log: what a task writes to it is
	// kept on the node that ran the attempt, bounded, and read with
	// `shoal job logs`. A streaming task copies its children's standard
	// error here. It may be written from several goroutines at once and
	// never returns an error. Nil in a sequential run.
	Log io.Writer
}

// Aborter is implemented by a Mapper or Reducer that holds outside
// resources, such as a child process. The runner calls Abort when the task
// is cancelled or has failed, from another goroutine, possibly while Map,
// Reduce or Close runs; those calls must then return soon. Abort may be
// called more than once.
type Aborter interface {
	Abort()
}

// CounterSource is implemented by a Mapper or Reducer that keeps counters
// of its own (such as Hadoop Streaming's reporter:counter lines). The runner
// reads them once the task has ended and adds them to the job's.
type CounterSource interface {
	Counters() Counters
}

// StatusSource is implemented by a Mapper or Reducer that reports a status
// line (Hadoop Streaming's reporter:status). The runner may call Status at
// any time, from another goroutine.
type StatusSource interface {
	Status() string
}

// MapTaskID is the TaskID of map task n: "m-%06d".
func MapTaskID(n int) string { return fmt.Sprintf("m-%06d", n) }

// ReduceTaskID is the TaskID of the reduce task of partition p: "r-%05d".
func ReduceTaskID(p int) string { return fmt.Sprintf("r-%05d", p) }

// MapOutputName is the name of map task n's output file in a MapOnly job:
// "part-m-%05d".
func MapOutputName(n int) string { return fmt.Sprintf("part-m-%05d", n) }

// ReduceOutputName is the name of partition p's output file: "part-r-%05d".
func ReduceOutputName(p int) string { return fmt.Sprintf("part-r-%05d", p) }

// Job is a runnable job: what a registered Spec builds from parameters.
// A Job is read-only once built and may be shared by concurrent tasks.
type Job struct {
	// Input is how map input files are cut into records.
	Input InputFormat
	// NewMapper builds the mapper of one map task. Required.
	NewMapper func(TaskInfo) (Mapper, error)
	// NewCombiner, if set, builds a combiner for one map task's output.
	// Combiners must not change a job's result: RunSequential never uses
	// them, the distributed runner may.
	NewCombiner func(TaskInfo) (Reducer, error)
	// NewReducer builds the reducer of one partition. Required unless
	// MapOnly, and nil with MapOnly.
	NewReducer func(TaskInfo) (Reducer, error)
	// Partitioner splits map output among reducers. nil means
	// HashPartitioner.
	Partitioner Partitioner
	// MapOnly jobs have no reduce: each map task's output is written as is,
	// in emission order, to MapOutputName(n) ("part-m-NNNNN"), one file per
	// map task in split order.
	MapOnly bool
	// DefaultReducers is the number of reduce partitions used when the user
	// gives none; 0 means 1.
	DefaultReducers int
	// Files are shipped with the job into every task's WorkDir, under their
	// base names (Hadoop Streaming's -file). The distributed runner reads
	// them from the cluster file system; RunSequential from the local one.
	Files []string
	// Output is how output pairs are written: TextOutput (the default) or
	// RawOutput. See AppendOutput.
	Output OutputFormat
	// PackInputs lets a distributed runner pack small input files (each
	// at most the job's max split size, a block by default) into shared
	// map tasks, Hadoop's CombineFileInputFormat: a job over 10,000 small
	// files runs a few map tasks, not 10,000. Set it only for a job whose
	// result does not depend on which records a map task sees: a packed
	// task's TaskInfo.InputFile names only its first file, and in a
	// MapOnly job a part file holds several inputs' output. RunSequential
	// runs one map task per input regardless.
	PackInputs bool
	// Generate, if positive, makes a generator job: it reads no input (a
	// runner refuses to run it on inputs) and has Generate map tasks; map
	// task n (TaskID MapTaskID(n), no InputFile) calls Map once, with key n
	// in decimal ASCII and an empty value, and counts that call as its one
	// input record. A generator job is usually MapOnly (teragen), each task
	// writing MapOutputName(n), but it need not be. 0 means a job that reads
	// its inputs.
	Generate int
	// Prepare, if set, runs once per job at submission, on the submitting
	// node, before any task: Registry.ResolvePrepared calls it and then
	// rebuilds the job with the parameters it returns merged into the
	// job's, so every task's Build sees them (TeraSort's split points,
	// computed from a sample of the input). Its names must be parameters
	// the Spec declares (mark them internal in their Usage); its values
	// replace the given ones. s samples the job's input (see Sampler);
	// reducers is the number of reduce partitions the job will run (0 for a
	// MapOnly job). Prepare may block; it should return soon once ctx is
	// done. The rebuilt job may have a Prepare too (built from the merged
	// parameters): runners ignore it, building tasks with Resolve on the
	// merged parameters, and RunSequential never runs Prepare.
	Prepare func(ctx context.Context, s Sampler, reducers int) (map[string]string, error)
}

// Validate reports whether j is complete and consistent: it has a mapper, a
// reducer unless MapOnly (and no reducer or combiner with MapOnly), known
// input and output formats, and non-negative DefaultReducers and Generate.
// That a generator job is given no inputs is the runner's check.
func (j *Job) Validate() error {
	switch {
	case j == nil:
		return errors.New("no job")
	case j.NewMapper == nil:
		return errors.New("job has no mapper")
	case j.MapOnly && j.NewReducer != nil:
		return errors.New("map-only job has a reducer")
	case j.MapOnly && j.NewCombiner != nil:
		return errors.New("map-only job has a combiner")
	case !j.MapOnly && j.NewReducer == nil:
		return errors.New("job has no reducer and is not map-only")
	case j.DefaultReducers < 0:
		return fmt.Errorf("job has negative default reducers %d", j.DefaultReducers)
	case j.Generate < 0:
		return fmt.Errorf("job has negative generate %d", j.Generate)
	}
	if err := j.Output.validate(); err != nil {
		return err
	}
	return j.Input.validate()
}

// NumReducers is the number of reduce partitions a run of j uses when the
// user asks for requested: requested if it is positive, else
// DefaultReducers if positive, else 1. It is 0 for MapOnly jobs.
func (j *Job) NumReducers(requested int) int {
	switch {
	case j.MapOnly:
		return 0
	case requested > 0:
		return requested
	case j.DefaultReducers > 0:
		return j.DefaultReducers
	}
	return 1
}

// partitioner is j's partitioner with the default filled in.
func (j *Job) partitioner() Partitioner {
	if j.Partitioner == nil {
		return HashPartitioner
	}
	return j.Partitioner
}

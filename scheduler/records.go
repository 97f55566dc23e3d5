// Package scheduler runs MapReduce jobs without a master. A job is a
// record in the replicated metadata; every node runs the same reconcile
// loop over it, maps the input blocks it is the first live owner of,
// reduces the partitions it owns on the ring, and publishes what it did as
// records. Exactly one map output per split and one commit per partition
// is accepted — the valid record with the lowest version — so a task that
// ran twice never counts twice, and any node can report or finish a job.
package scheduler

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/worker"
)

// Record keys. Every key below a job starts with its kind and the job ID;
// a per-node key ends with the node name so nodes never overwrite each
// other's records. What a job costs in records does not grow with its
// input: one job record, one tasks record per node, one state record.
//
//	job/<id>              JobRecord, written once at submission
//	jobstate/<id>         StateRecord, once the job ends
//	tasks/<id>/<node>     NodeTasks: that node's finished tasks, counts and failures
//	taskstatus/<id>/<task> the status line a task's code last reported
const (
	jobPrefix   = "job/"
	statePrefix = "jobstate/"
	tasksPrefix = "tasks/"
	// taskstatus/<id>/<task>: the status line a task's code last reported.
	taskStatusPrefix = "taskstatus/"
)

// PushPrefixes are the prefixes of the records other nodes wait on to
// act: a job record (its tasks start), a tasks record (a reducer's next
// segment, the ender's last commit) and an end record (every node stops,
// a waiting client answers). A node pushes its own writes of them to
// every member at once (gossip.Config.PushPrefixes), so a small job's
// critical path does not wait for gossip rounds.
func PushPrefixes() []string { return []string{jobPrefix, statePrefix, tasksPrefix} }

// Job states.
const (
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
	StateKilled    = "killed"
)

// InputFile pins one input file's version at submission.
type InputFile struct {
	Path        string        `msgpack:"p" json:"path"`
	Manifest    blockstore.ID `msgpack:"m" json:"manifest"`
	Size        int64         `msgpack:"s" json:"size"`
	Blocks      int           `msgpack:"b" json:"blocks"`
	BlockSize   int64         `msgpack:"bs" json:"block_size"`
	Replication int           `msgpack:"r" json:"replication"`
}

// JobRecord is a submitted job. It never changes after submission. It
// holds only what does not grow with the input, so it stays well under
// 1 KB whatever the job reads: everything that grows (parameters, the input
// files, the splits) is in the job's spec block, which Spec names, or, for
// a spec of at most MaxInlineSpecBytes, in SpecInline.
type JobRecord struct {
	ID           string        `msgpack:"id" json:"id"`
	Name         string        `msgpack:"n" json:"name"`
	Output       string        `msgpack:"out" json:"output"`
	Reducers     int           `msgpack:"r" json:"reducers"` // 0 for a map-only job
	MapOnly      bool          `msgpack:"mo" json:"map_only"`
	Generate     int           `msgpack:"g,omitempty" json:"generate,omitempty"` // map tasks of a generator job, which reads no input
	MaxAttempts  int           `msgpack:"ma" json:"max_attempts"`
	Replication  int           `msgpack:"or" json:"output_replication"`
	Participants []string      `msgpack:"pt" json:"participants"`
	SubmittedBy  string        `msgpack:"by" json:"submitted_by"`
	SubmittedAt  int64         `msgpack:"at" json:"submitted_at_unix_ns"`
	Spec         blockstore.ID `msgpack:"sp" json:"spec"`
	// OutputCodec compresses the output parts ("gzip" or "zstd", named
	// with the codec's extension); "" writes them plain.
	OutputCodec string `msgpack:"oc,omitempty" json:"output_compression,omitempty"`
	// ShuffleCodec compresses map output segments on the wire
	// (shuffle.CodecS2, shuffle.CodecZstd); "" sends them plain.
	ShuffleCodec string `msgpack:"shc,omitempty" json:"map_output_compression,omitempty"`
	SpecBytes    int    `msgpack:"sb" json:"spec_bytes"`
	NumSplits    int    `msgpack:"ns" json:"splits"`
	InputFiles   int    `msgpack:"nf" json:"input_files"`
	InputBytes   int64  `msgpack:"nb" json:"input_bytes"`
	// TaskTimeout, in nanoseconds, fails a task attempt that makes no
	// progress for that long (job.Task.Timeout); 0 disables it.
	TaskTimeout int64 `msgpack:"tt,omitempty" json:"task_timeout_ns"`
	// Binary, for a shipped job, is the SHA-256 (hex) of the program that
	// holds the job's code, stored at BinaryPath(Binary); its tasks run in
	// worker processes of it. Empty for a job the agents have built in.
	Binary string `msgpack:"bin,omitempty" json:"binary,omitempty"`
	// NoSpeculativeMaps and NoSpeculativeReduces turn speculation (backup
	// attempts of stragglers) off for the job's maps or reduces.
	NoSpeculativeMaps    bool `msgpack:"nsm,omitempty" json:"no_speculative_maps,omitempty"`
	NoSpeculativeReduces bool `msgpack:"nsr,omitempty" json:"no_speculative_reduces,omitempty"`
	// SpecInline is the job's spec itself (the bytes a spec block would
	// hold) when it is at most MaxInlineSpecBytes and every alive member
	// announced at submission that it reads it here (Config.InlineSpecs);
	// Spec is then zero. The record is replicated metadata, written and
	// pushed to every member at once, so a small job writes no spec block
	// before its record. Releases before it ignore the field, which is why
	// it is used only when none of them is alive.
	SpecInline []byte `msgpack:"si,omitempty" json:"-"`
	// EvenReducers places the job's partitions evenly over its live
	// participants (reducersOf); without it each goes to its owner on the
	// ring of live participants, as releases before the field place every
	// job's. Set at submission only when every alive member announced that
	// it reads it (Config.EvenReducers): every node running a job must
	// place its partitions by one rule, or a partition may have no
	// reducer.
	EvenReducers bool `msgpack:"er,omitempty" json:"-"`

	// Params and Inputs come from the spec block once a node has loaded
	// it; they are never part of the record.
	Params map[string]string `msgpack:"-" json:"-"`
	Inputs []InputFile       `msgpack:"-" json:"-"`
}

// Splits is the number of map tasks: one per input block, or the
// generator's task count.
func (j *JobRecord) Splits() int { return j.NumSplits }

// JobSpec is the part of a job that grows with its input, stored as one
// content-addressed block (replicated like the job's output) that the job
// record references by ID. Nodes fetch it once per job, verify it against
// its ID, and cache it.
type JobSpec struct {
	JobID  string            `msgpack:"id"`
	Params map[string]string `msgpack:"pa"`
	Inputs []InputFile       `msgpack:"in"`
	// Splits lists every input block in split order: files in submission
	// order, blocks in file order. A generator job has none.
	Splits []SpecSplit `msgpack:"sp"`
	// Shipped describes a shipped job (JobRecord.Binary) as its program
	// built it at submission: formats, files, reducers.
	Shipped *worker.Info `msgpack:"sh,omitempty"`
}

// SpecSplit is one input block of a job: which input file, which block,
// and where the block starts in its file. A map task reads a run of spec
// splits: one that does not Join and those after it that do. Consecutive
// blocks of one file in a run are read as one range (a compressed file is
// always one run of all its blocks; packed small files are runs of whole
// files). Specs written before Join existed decode with none: one map task
// per block.
type SpecSplit struct {
	File   int                 `msgpack:"f"`
	Block  blockstore.BlockRef `msgpack:"b"`
	Offset int64               `msgpack:"o"`
	Join   bool                `msgpack:"j,omitempty"`
}

// MaxInlineSpecBytes bounds a spec carried in its job record
// (JobRecord.SpecInline): a job of a few input files, which keeps the
// record within one gossip packet.
const MaxInlineSpecBytes = 512

// MaxSpecBytes bounds a job's spec block (about 400,000 input files or
// blocks with short paths); a larger job is refused at submission.
const MaxSpecBytes = 64 << 20

var specMagic = []byte("SHOALJS1")

func encodeSpec(sp JobSpec) []byte {
	return append(append([]byte(nil), specMagic...), encode(sp)...)
}

func decodeSpec(b []byte) (JobSpec, error) {
	var sp JobSpec
	rest, ok := bytes.CutPrefix(b, specMagic)
	if !ok {
		return sp, errors.New("not a job spec block")
	}
	if err := msgpack.Unmarshal(rest, &sp); err != nil {
		return sp, fmt.Errorf("malformed job spec: %w", err)
	}
	return sp, nil
}

// StateRecord ends a job.
//
// It is also the job's summary once its tasks records are gone: when a
// job ends, the node that ends it folds the records into it (state, end
// time, counters, how many maps and reduces were done, and per node the
// tasks it finished and the attempts that failed there); every node then
// deletes its own tasks record, and the ring owner of the job those of
// nodes that are gone. The job record and this summary are kept for the
// cluster's job history (Config.JobHistory, JobHistoryAge), then deleted.
type StateRecord struct {
	State       string                 `msgpack:"s" json:"state"`
	Error       string                 `msgpack:"e,omitempty" json:"error,omitempty"`
	By          string                 `msgpack:"by" json:"by"`
	At          int64                  `msgpack:"at" json:"at_unix_ns"`
	Counters    job.Counters           `msgpack:"c,omitempty" json:"counters,omitempty"`
	MapsDone    int                    `msgpack:"md" json:"maps_done"`
	ReducesDone int                    `msgpack:"rd" json:"reduces_done"`
	Nodes       map[string]NodeSummary `msgpack:"nd,omitempty" json:"nodes,omitempty"`
	// Note records another end of the job that this one overrode (see
	// settleEnds): the job ended succeeded on one side of a network
	// partition and failed or killed on the other.
	Note string `msgpack:"nt,omitempty" json:"note,omitempty"`
}

// NodeSummary is one node's part in an ended job.
type NodeSummary struct {
	Maps    int `msgpack:"m" json:"maps"`
	Reduces int `msgpack:"r" json:"reduces"`
	Failed  int `msgpack:"f" json:"failed_attempts"`
}

// MapRecord is what a finished map attempt reports to the loop.
type MapRecord struct {
	Node     string
	Attempt  int
	Local    bool // the input block was read from local disk
	Counters job.Counters
}

// CommitRecord is what a finished reduce attempt reports to the loop.
type CommitRecord struct {
	Node     string
	Attempt  int
	Counters job.Counters
}

func encode(v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("scheduler: encode %T: %v", v, err)) // our own types always encode
	}
	return b
}

func decode(b []byte, v any) error {
	if err := msgpack.Unmarshal(b, v); err != nil {
		return fmt.Errorf("malformed %T record: %w", v, err)
	}
	return nil
}

// newJobID returns a sortable, unique job ID such as
// job-20261121-060102-3fa9c1.
func newJobID(now time.Time) string {
	var b [3]byte
	rand.Read(b[:])
	return "job-" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// validJobID accepts what newJobID makes (and nothing that could escape a
// path or a key).
func validJobID(id string) bool {
	if !strings.HasPrefix(id, "job-") || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

var (
	mapTaskID    = job.MapTaskID
	reduceTaskID = job.ReduceTaskID
	partName     = job.ReduceOutputName
	mapPartName  = job.MapOutputName
)

func keyJoin(parts ...string) string { return strings.Join(parts, "/") }

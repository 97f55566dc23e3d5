package client

import (
	"net/url"
	"strconv"
	"time"

	"shoal.dev/shoal/job"
)

// SubmitRequest asks for a job (POST /v1/jobs).
type SubmitRequest struct {
	// Name is the job: a built-in one, or one of the program whose
	// SHA-256 Binary names.
	Name   string            `json:"name"`
	Params map[string]string `json:"params,omitempty"`
	// Inputs are files, directories (every file below) or globs.
	Inputs []string `json:"inputs"`
	Output string   `json:"output"`
	// Reducers: 0 takes the job's default; negative is an error.
	Reducers int `json:"reducers"`
	// MaxAttempts per task: 0 takes the default (4).
	MaxAttempts int `json:"max_attempts"`
	// Replication of the output files: 0 takes the file system default.
	Replication int `json:"replication"`
	// TaskTimeout fails a task attempt that makes no progress for this
	// long, a Go duration such as "10m" or "90s": "" takes the default
	// (10m), "0" disables it; otherwise it is between 1s and 168h.
	TaskTimeout string `json:"task_timeout,omitempty"`
	// Binary, if set, is the SHA-256 (64 hex digits) of a program stored
	// at BinaryPath(Binary) that holds the job's code (a shipped job; see
	// Client.ShipProgram): the agents run Name from it, in worker
	// processes, whether or not they have a job of that name built in.
	// A submission whose program is not stored (never, or deleted by the
	// clean-up of BinaryDir since ShipProgram found it stored) fails with
	// an *Error of Status 410 (Gone): ship it again and submit again.
	Binary string `json:"binary,omitempty"`
	// NoSpeculativeMaps and NoSpeculativeReduces turn off backup attempts
	// of straggling maps or reduces for this job (Hadoop's
	// mapreduce.map.speculative=false, mapreduce.reduce.speculative=false).
	NoSpeculativeMaps    bool `json:"no_speculative_maps,omitempty"`
	NoSpeculativeReduces bool `json:"no_speculative_reduces,omitempty"`
	// OutputCompression compresses the output parts: "gzip" or "zstd"
	// (part-r-00000.zst), or "" / "none".
	OutputCompression string `json:"output_compression,omitempty"`
	// MaxSplitBytes bounds the splits packed from small input files, for a
	// job whose code allows it (Hadoop's CombineFileInputFormat): 0 takes
	// the default, 128 MiB; negative packs nothing.
	MaxSplitBytes int64 `json:"max_split_bytes,omitempty"`
	// MapOutputCompression compresses map output segments on their way
	// to the reducers: "s2", "zstd" or "none"; "" takes the agents'
	// default (s2: see README, Shuffle compression).
	MapOutputCompression string `json:"map_output_compression,omitempty"`
}

// Job states.
const (
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
	StateKilled    = "killed"
)

// JobStatus is a job as an agent reports it (GET /v1/jobs/ID).
type JobStatus struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Output   string `json:"output"`
	Reducers int    `json:"reducers"` // 0 for a map-only job
	MapOnly  bool   `json:"map_only"`
	// Generate is the map tasks of a generator job, which reads no input.
	Generate     int      `json:"generate,omitempty"`
	MaxAttempts  int      `json:"max_attempts"`
	Replication  int      `json:"output_replication"`
	Participants []string `json:"participants"`
	SubmittedBy  string   `json:"submitted_by"`
	SubmittedAt  int64    `json:"submitted_at_unix_ns"`
	// Spec is the ID of the block that holds the job's parameters, inputs
	// and splits, empty when they travel in the job record itself (a spec
	// of at most 512 bytes); SpecBytes their size.
	Spec                 string `json:"spec"`
	OutputCompression    string `json:"output_compression,omitempty"`
	MapOutputCompression string `json:"map_output_compression,omitempty"`
	SpecBytes            int    `json:"spec_bytes"`
	Splits               int    `json:"splits"`
	InputFiles           int    `json:"input_files"`
	InputBytes           int64  `json:"input_bytes"`
	// TaskTimeout, in nanoseconds; 0: none.
	TaskTimeout int64 `json:"task_timeout_ns"`
	// Binary is the SHA-256 of a shipped job's program (BinaryPath).
	Binary               string `json:"binary,omitempty"`
	NoSpeculativeMaps    bool   `json:"no_speculative_maps,omitempty"`
	NoSpeculativeReduces bool   `json:"no_speculative_reduces,omitempty"`

	State       string       `json:"state"`
	Error       string       `json:"error,omitempty"`
	Maps        int          `json:"maps"`
	MapsDone    int          `json:"maps_done"`
	ReducesDone int          `json:"reduces_done"`
	Counters    job.Counters `json:"counters"`
	EndedAt     int64        `json:"ended_at_unix_ns,omitempty"`
	// Note: another end of the job that this one overrode.
	Note string `json:"note,omitempty"`
	// TaskStatus holds the status lines tasks' code reported, by task ID.
	TaskStatus map[string]string `json:"task_status,omitempty"`
	// Nodes is each node's part, once the job ended.
	Nodes map[string]NodeSummary `json:"nodes,omitempty"`
}

// NodeSummary is one node's part of an ended job.
type NodeSummary struct {
	Maps    int `json:"maps"`
	Reduces int `json:"reduces"`
	Failed  int `json:"failed_attempts"`
}

// Ended reports whether the job has its final state.
func (s JobStatus) Ended() bool { return s.State != "" && s.State != StateRunning }

// MapProgress is the fraction of maps done, 0 to 1.
func (s JobStatus) MapProgress() float64 {
	if s.Maps == 0 {
		return 1
	}
	return float64(s.MapsDone) / float64(s.Maps)
}

// ReduceProgress is the fraction of reduces done, 0 to 1.
func (s JobStatus) ReduceProgress() float64 {
	if s.Reducers == 0 {
		return s.MapProgress()
	}
	return float64(s.ReducesDone) / float64(s.Reducers)
}

// FileInfo is a file of the cluster file system.
type FileInfo struct {
	Path        string `json:"path"`
	Size        int64  `json:"size"`
	ModTime     int64  `json:"mtime_unix_ns"`
	BlockSize   int64  `json:"block_size"`
	Replication int    `json:"replication"`
	Blocks      int    `json:"blocks"`
	// Manifest is the ID of the block that lists the file's blocks: it
	// names this version of the file.
	Manifest string `json:"manifest"`
}

// MTime is the file's modification time.
func (f FileInfo) MTime() time.Time { return time.Unix(0, f.ModTime) }

// Entry is one name in a directory listing.
type Entry struct {
	Name  string    `json:"name"`
	Path  string    `json:"path"`
	Dir   bool      `json:"dir"`
	File  *FileInfo `json:"file,omitempty"`
	Files int       `json:"files,omitempty"` // for a directory: files below it
	Size  int64     `json:"size"`            // for a directory: their total size
}

// PutOptions say how Put stores a file.
type PutOptions struct {
	BlockSize   int64 // 0: the agent's default
	Replication int   // 0: the agent's default
	Force       bool  // replace an existing file
}

// Query is the query string of a put of path with these options
// (PUT /v1/fs/file): what the agent's API reads them from.
func (o PutOptions) Query(path string) url.Values {
	q := url.Values{"path": {path}}
	if o.BlockSize > 0 {
		q.Set("block_size", strconv.FormatInt(o.BlockSize, 10))
	}
	if o.Replication > 0 {
		q.Set("replication", strconv.Itoa(o.Replication))
	}
	if o.Force {
		q.Set("force", "1")
	}
	return q
}

// PutInfo answers a put (PUT /v1/fs/file, POST /v1/fs/commit).
type PutInfo struct {
	File    FileInfo `json:"file"`
	Warning string   `json:"warning,omitempty"`
}

// StatInfo answers a stat (GET /v1/fs/stat): the file and where each of
// its blocks is.
type StatInfo struct {
	File   FileInfo        `json:"file"`
	Blocks []BlockLocation `json:"blocks"`
}

// BlockLocation is one block of a file and the members that hold it.
type BlockLocation struct {
	ID       string   `json:"id"`
	Size     int64    `json:"size"`
	Manifest bool     `json:"manifest,omitempty"`
	Holders  []string `json:"holders"` // alive members that store it
	Owners   []string `json:"owners"`  // members the ring places it on, those low on disk last
}

// RemoveInfo answers a remove (DELETE /v1/fs/file).
type RemoveInfo struct {
	Removed []string `json:"removed"`
}

// RenameRequest is the body of POST /v1/fs/rename.
type RenameRequest struct {
	Src string `json:"src"`
	Dst string `json:"dst"`
}

// RenameInfo answers a rename: where the source went (inside Dst when Dst
// is a directory).
type RenameInfo struct {
	Src string `json:"src"`
	Dst string `json:"dst"`
}

// DiskInfo answers GET /v1/fs/df: a node's share of the file system.
type DiskInfo struct {
	Name string `json:"name"`
	// Capacity and Free are the data dir's file system: its size, and the
	// bytes free to the agent; both 0 if it cannot be read.
	Capacity int64 `json:"capacity"`
	Free     int64 `json:"free"`
	// Used is the bytes of the blocks this node holds, Blocks their number.
	Used   int64 `json:"used"`
	Blocks int64 `json:"blocks"`
}

// BlockAck acknowledges one block of a resumable put (PUT /v1/fs/block):
// its ID and length, how many copies were stored, and the replication the
// agent applied (the asked one, capped at the alive members).
type BlockAck struct {
	ID          string `json:"id"`
	Size        int64  `json:"size"`
	Copies      int    `json:"copies"`
	Replication int    `json:"replication"`
}

// BlockRef is one block of a file, in order: its ID (hex) and length.
type BlockRef struct {
	ID   string
	Size int64
}

// CommitRequest ends a resumable put (POST /v1/fs/commit): the file's
// blocks in order.
type CommitRequest struct {
	Path        string     `json:"path"`
	BlockSize   int64      `json:"block_size"`
	Replication int        `json:"replication"`
	Overwrite   bool       `json:"force,omitempty"`
	Blocks      []BlockRef `json:"blocks"`
}

// Conflict is a write of Path that lost to another write of it made on
// the other side of a network partition (GET /v1/fs/conflicts).
type Conflict struct {
	// Path is the file both wrote.
	Path string `json:"path"`
	// Copy is where the losing write is kept.
	Copy string `json:"copy"`
	// Winner and Loser are the two file records.
	Winner FileInfo `json:"winner"`
	Loser  FileInfo `json:"loser"`
	// WinnerVersion and LoserVersion are their record versions: the
	// writers are their Node.
	WinnerVersion WriteVersion `json:"winner_version"`
	LoserVersion  WriteVersion `json:"loser_version"`
	// DetectedBy is the node that wrote this record.
	DetectedBy string `json:"detected_by"`
}

// WriteVersion orders the writes of a record: a hybrid logical clock
// (Unix milliseconds shifted left by 16 bits, plus a counter) and the
// node that wrote it.
type WriteVersion struct {
	HLC  uint64
	Node string
}

// Time is the physical part of the version's clock.
func (v WriteVersion) Time() time.Time { return time.UnixMilli(int64(v.HLC >> 16)) }

// HealthInfo is the body of GET /v1/health.
type HealthInfo struct {
	Status  string `json:"status"`
	Name    string `json:"name"`
	Version string `json:"version"`
	Alive   int    `json:"alive"`
	// Error is why the node is unhealthy (status "unhealthy", HTTP 503),
	// or why it is low on disk (status "low_disk", HTTP 200: it serves
	// what it holds but takes no new blocks or tasks).
	Error string `json:"error,omitempty"`
	// DiskFree is the free space of the node's most constrained data file
	// system (DiskPath), DiskReserve the --reserve there, in bytes.
	DiskFree    int64  `json:"disk_free"`
	DiskReserve int64  `json:"disk_reserve"`
	DiskPath    string `json:"disk_path,omitempty"`
	LowDisk     bool   `json:"low_disk,omitempty"`
}

// Member is one member as the API reports it (GET /v1/members).
type Member struct {
	Name     string   `json:"name"`
	Gossip   string   `json:"gossip"`
	State    string   `json:"state"`
	PeerID   string   `json:"peer_id"`
	P2PAddrs []string `json:"p2p_addrs"`
	HTTP     string   `json:"http"`
	Version  string   `json:"version"`
	// Unhealthy is why the member takes no tasks; empty when healthy.
	Unhealthy string `json:"unhealthy,omitempty"`
	// Draining is true while the member hands its blocks over to leave.
	Draining bool `json:"draining,omitempty"`
	// Wire is the generation of wire formats the member speaks; 0 when
	// its metadata does not decode.
	Wire int `json:"wire"`
	// Incompatible says why this node cannot speak to the member (its
	// formats are too far from ours); such a member is out of the ring.
	Incompatible string `json:"incompatible,omitempty"`
	// DiskFree and DiskReserve are the member's free space and reserve in
	// bytes as it last gossiped them; LowDisk: it takes no new blocks or
	// tasks.
	DiskFree    int64 `json:"disk_free"`
	DiskReserve int64 `json:"disk_reserve"`
	LowDisk     bool  `json:"low_disk,omitempty"`
}

// OwnersInfo is the body of GET /v1/ring/owners.
type OwnersInfo struct {
	Key    string   `json:"key"`
	Owners []string `json:"owners"`
}

// PingRequest is the body of POST /v1/p2p/ping.
type PingRequest struct {
	Node string `json:"node"`
}

// PingInfo is the answer to a ping.
type PingInfo struct {
	Node   string  `json:"node"`
	PeerID string  `json:"peer_id"`
	From   string  `json:"from"`
	RTTMs  float64 `json:"rtt_ms"`
}

// DrainInfo is the body of POST and GET /v1/drain.
type DrainInfo struct {
	Node     string `json:"node"`
	Draining bool   `json:"draining"`
	// BlocksLeft counts the copies this node still holds that files need
	// and that no other member holds enough of yet; -1 until a repair pass
	// since the drain started has counted them.
	BlocksLeft int  `json:"blocks_left"`
	Done       bool `json:"done"`
}

// ConsoleLink is the answer of POST /v1/ui/link.
type ConsoleLink struct {
	// Path is the one-time login path to append to the agent's address.
	Path    string    `json:"path"`
	Expires time.Time `json:"expires"`
}

// AttemptLog is one task attempt's log as GET /v1/jobs/ID/logs lists it.
// Attempts are numbered per task from 1, in the order they started, over
// every node.
type AttemptLog struct {
	Task    string    `json:"task"`
	Attempt int       `json:"attempt"`
	Node    string    `json:"node"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end,omitzero"`
	Result  string    `json:"result"` // running, succeeded, failed, killed, lost
	Size    int64     `json:"size"`
	// IO is what the attempt read and wrote: absent while it runs.
	IO *AttemptIO `json:"io,omitempty"`
}

// AttemptIO is what a task attempt read and wrote.
type AttemptIO struct {
	// In: a map's input bytes read (0 for a generator's split); a
	// reduce's shuffle bytes fetched.
	In int64 `json:"in_bytes"`
	// Out: a map's output bytes written (its map output, or its part of a
	// map-only job's output); a reduce's output part's bytes.
	Out int64 `json:"out_bytes"`
	// Locality of a map's input: "local", "remote", or "" (no input
	// blocks: a generator's split, a reduce).
	Locality string `json:"locality,omitempty"`
}

// AttemptLogs is the body of GET /v1/jobs/ID/logs.
type AttemptLogs struct {
	Job      string       `json:"job"`
	Attempts []AttemptLog `json:"attempts"`
	// Missing names the alive members that did not answer: their
	// attempts are not listed.
	Missing []string `json:"missing,omitempty"`
	// Cut is true when a member listed only its first attempts.
	Cut bool `json:"cut,omitempty"`
}

// BinaryDir is the directory where shipped programs are stored, each
// under its SHA-256 in hex.
const BinaryDir = "/.shoal/bin"

// BinaryPath is where the program whose SHA-256 is sum (hex) is stored.
func BinaryPath(sum string) string { return BinaryDir + "/" + sum }

// Package worker runs the tasks of a shipped job: a job compiled into the
// program that submitted it (a Go main that calls cli.Main with its own
// job.Specs) and not into the agents. The submitter stores its own
// executable in the cluster, content-addressed by its SHA-256; each node
// fetches it once, verifies it, and runs the job's tasks in worker
// processes of it, which serve the task driver (job.RunMapTask,
// job.RunReduceTask) over a framed protocol on pipes.
//
// # The worker protocol
//
// The agent starts the executable with SHOAL_WORKER=<Proto> in its
// environment (cli.Main then calls Serve instead of the command line) and
// three descriptors: 3, a lifeline whose write end only the agent holds
// (the worker exits when it reads end-of-file, so it dies with its agent);
// 4, the agent's frames; 5, the worker's frames. The worker's stdout and
// stderr go to the agent, which keeps their last lines for error messages.
//
// A frame is a type byte, a big-endian uint32 payload length (at most
// MaxFrame) and the payload. Control payloads are msgpack; data payloads
// (type 'D') are batches of pairs, each a uvarint key length, the key, a
// uvarint value length and the value. In reduce input a key length of 0
// means "the same key as the pair before" and n means a new key of n-1
// bytes, so a worker sees key groups without the agent repeating keys.
//
//	agent → worker: 'H' hello{proto, minor}; then any number of
//	                'Q' describe{name, params}      → 'I' info
//	                'P' prepare{name, params, reducers}
//	                    → ('A' sample{splits, per}  ← 'K' keys{keys, err})* → 'I' info
//	                'T' task{...}, 'D'*, 'E'        → 'D'*, 'S'*, 'F' done
//	worker → agent: 'H' hello{proto, minor, goos, goarch, jobs} first
//
// 'P' runs the job's Prepare (Registry.ResolvePrepared) in the worker, at
// submission: its Sampler asks the agent for each sample ('A'), which the
// agent reads from the job's input as it does for a built-in job and
// sends back ('K', at most MaxFrame bytes); the answer is the info of the
// job rebuilt with the parameters Prepare returned. Minor versions add
// frames without breaking older peers: an agent sends 'P' only to a
// worker whose hello says minor 1 or more (ProtoMinor).
//
// The agent sends a task's input and reads its output at once. A map task
// of a job with reducers writes its partitioned, sorted, combined output
// into the agent's shuffle directory itself (the same code the agent runs
// for a built-in job, NewMapWriter), so only MapOnly and reduce tasks
// send pairs back. 'S' frames carry the user code's status line and
// progress count. 'F' ends the task with its counters and error. A worker
// serves one task at a time, any number of them; the agent keeps one per
// task slot per job and ends them when the job ends. Proto changes with
// any change to the frames or to the shuffle files a worker writes.
package worker

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"

	"shoal.dev/shoal/job"
)

// Proto is the worker protocol's version. A worker and an agent of
// different versions refuse each other at the hello.
const Proto = 1

// ProtoMinor is the protocol's minor version: what a worker can do beyond
// Proto's frames. 1: 'P' prepare, with 'A' and 'K'. Peers of different
// minor versions work together; the agent asks only for what the worker's
// minor version has.
const ProtoMinor = 1

// EnvVar in a process's environment, set to the protocol version, makes
// cli.Main serve the worker protocol instead of the command line.
const EnvVar = "SHOAL_WORKER"

// MaxFrame bounds a frame's payload: a record (key and value) must fit in
// one, with its length prefixes.
const MaxFrame = 64 << 20

// Frame types.
const (
	frameHello    = 'H'
	frameDescribe = 'Q'
	frameInfo     = 'I'
	frameTask     = 'T'
	frameData     = 'D'
	frameEnd      = 'E'
	frameStatus   = 'S'
	frameDone     = 'F'
	framePrepare  = 'P'
	frameSample   = 'A'
	frameKeys     = 'K'
)

// batchBytes is the size at which a data batch is sent.
const batchBytes = 64 << 10

// ErrProtocol is matched by every error about bytes on the worker pipes
// that do not follow the protocol.
var ErrProtocol = errors.New("worker protocol")

func protoErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

type hello struct {
	Proto  int      `msgpack:"p"`
	Minor  int      `msgpack:"mi,omitempty"`
	GOOS   string   `msgpack:"os,omitempty"`
	GOARCH string   `msgpack:"arch,omitempty"`
	Jobs   []string `msgpack:"jobs,omitempty"`
}

type describeReq struct {
	Name   string            `msgpack:"n"`
	Params map[string]string `msgpack:"p"`
}

// Info describes a job of a shipped program, as its Spec builds it from
// the parameters given: what an agent needs to schedule it without the
// job's code.
type Info struct {
	// Name is the job's name.
	Name string `msgpack:"n"`
	// Params are the parameters, defaults filled in.
	Params          map[string]string `msgpack:"p"`
	MapOnly         bool              `msgpack:"mo,omitempty"`
	DefaultReducers int               `msgpack:"dr,omitempty"`
	Generate        int               `msgpack:"g,omitempty"`
	Input           job.InputFormat   `msgpack:"in,omitempty"`
	Output          job.OutputFormat  `msgpack:"out,omitempty"`
	Files           []string          `msgpack:"f,omitempty"`
	// Prepare says the job has a Prepare step: the agent has a worker run
	// it (Pool.Prepare) before it schedules the job.
	Prepare bool `msgpack:"prep,omitempty"`
}

// prepareReq asks a worker to run a job's Prepare.
type prepareReq struct {
	Name     string            `msgpack:"n"`
	Params   map[string]string `msgpack:"p"`
	Reducers int               `msgpack:"r"`
}

// sampleReq is a Prepare's call of its Sampler.
type sampleReq struct {
	Splits   int `msgpack:"s"`
	PerSplit int `msgpack:"n"`
}

// keysReply answers a sampleReq.
type keysReply struct {
	Keys [][]byte `msgpack:"k"`
	Err  string   `msgpack:"e,omitempty"`
}

type infoReply struct {
	Info Info   `msgpack:"i"`
	Err  string `msgpack:"e,omitempty"`
	// Kind of Err: errUnknownJob or errBadParam.
	Kind int `msgpack:"k,omitempty"`
}

const (
	errNone = iota
	errUser
	errOther
	errPermanent
	errUnknownJob
	errBadParam
)

// taskReq starts a task.
type taskReq struct {
	Reduce     bool              `msgpack:"r,omitempty"`
	Name       string            `msgpack:"n"`
	Params     map[string]string `msgpack:"p"`
	JobID      string            `msgpack:"j"`
	TaskID     string            `msgpack:"t"`
	Attempt    int               `msgpack:"a"`
	InputFile  string            `msgpack:"if,omitempty"`
	Partition  int               `msgpack:"pa,omitempty"`
	WorkDir    string            `msgpack:"wd,omitempty"`
	MapOnly    bool              `msgpack:"mo,omitempty"`
	Reducers   int               `msgpack:"nr,omitempty"`
	ShuffleDir string            `msgpack:"sd,omitempty"`
	SortBuffer int               `msgpack:"sb,omitempty"`
}

type statusMsg struct {
	Progress int64  `msgpack:"p"`
	Status   string `msgpack:"s,omitempty"`
}

type doneMsg struct {
	Counters job.Counters `msgpack:"c"`
	Err      string       `msgpack:"e,omitempty"`
	Kind     int          `msgpack:"k,omitempty"`
}

// frameReader reads frames, reusing one buffer: a payload is valid until
// the next read.
type frameReader struct {
	r   *bufio.Reader
	buf []byte
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 256<<10)}
}

// read returns the next frame. A frame cut short is io.ErrUnexpectedEOF;
// a clean end before a frame, io.EOF.
func (f *frameReader) read() (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(f.r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	switch h[0] {
	case frameHello, frameDescribe, frameInfo, frameTask, frameData, frameEnd, frameStatus, frameDone,
		framePrepare, frameSample, frameKeys:
	default:
		return 0, nil, protoErrorf("unknown frame type 0x%02x", h[0])
	}
	if n > MaxFrame {
		return 0, nil, protoErrorf("frame of %d bytes, over the limit of %d", n, MaxFrame)
	}
	if cap(f.buf) < int(n) {
		f.buf = make([]byte, n)
	}
	p := f.buf[:n]
	if _, err := io.ReadFull(f.r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	if cap(f.buf) > 4*batchBytes && n < batchBytes {
		f.buf = nil // drop a buffer grown for one long record
	}
	return h[0], p, nil
}

// readMsg reads a frame of type want and decodes its msgpack payload.
func (f *frameReader) readMsg(want byte, v any) error {
	t, p, err := f.read()
	if err != nil {
		return err
	}
	if t != want {
		return protoErrorf("frame type %q where %q was due", t, want)
	}
	if err := msgpack.Unmarshal(p, v); err != nil {
		return protoErrorf("malformed %q frame: %v", t, err)
	}
	return nil
}

// writeFrame writes one frame to w (not flushed).
func writeFrame(w *bufio.Writer, t byte, p []byte) error {
	if len(p) > MaxFrame {
		return fmt.Errorf("a record of %d bytes does not fit a worker frame (limit %d)", len(p), MaxFrame)
	}
	var h [5]byte
	h[0] = t
	binary.BigEndian.PutUint32(h[1:], uint32(len(p)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}

func writeMsg(w *bufio.Writer, t byte, v any) error {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return err
	}
	if err := writeFrame(w, t, b); err != nil {
		return err
	}
	return w.Flush()
}

// appendPair appends a pair in data-frame form; key == nil with sameKey
// writes the "same key" marker (reduce input).
func appendPair(b, key, value []byte, sameKey bool) []byte {
	if sameKey {
		b = append(b, 0)
	} else {
		b = binary.AppendUvarint(b, uint64(len(key))+1)
		b = append(b, key...)
	}
	b = binary.AppendUvarint(b, uint64(len(value)))
	return append(b, value...)
}

// nextPair parses the pair at the start of p. sameKey is set for the
// "same key" marker, key then nil.
func nextPair(p []byte) (key, value []byte, sameKey bool, rest []byte, err error) {
	kl, n := binary.Uvarint(p)
	if n <= 0 || kl > uint64(len(p)-n) {
		return nil, nil, false, nil, protoErrorf("malformed pair in a data frame")
	}
	p = p[n:]
	if kl == 0 {
		sameKey = true
	} else {
		key, p = p[:kl-1], p[kl-1:]
	}
	vl, n := binary.Uvarint(p)
	if n <= 0 || vl > uint64(len(p)-n) {
		return nil, nil, false, nil, protoErrorf("malformed pair in a data frame")
	}
	p = p[n:]
	return key, p[:vl], sameKey, p[vl:], nil
}

// Package tasklog keeps the logs of the task attempts a node runs: what a
// streaming child writes to its standard error, the lines a Go task and
// the scheduler write for it, and the error that ended it. Each attempt's
// log is one file on the node that ran it:
//
//	DIR/<job>/<task>.<start>.log            while the attempt runs
//	DIR/<job>/<task>.<start>.<result>.log   once it ended (succeeded, failed, killed, waiting)
//	DIR/<job>/<task>.<start>.<result>.<in>-<out>[-local|-remote].log
//	                                        once it ended, with what it read and wrote (IO)
//
// where start is the attempt's start time in Unix nanoseconds. An ended
// attempt's IO lives in its log's name, so that listing a job's attempts
// reads one directory and no file. A log is
// bounded: it keeps the first HeadBytes and the last TailBytes of what was
// written, with a line saying how much was left out between them; the
// error is always kept. A job's logs are removed with RemoveJob when the
// job's history is deleted. The package imports nothing of Shoal's.
package tasklog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bounds of one attempt's log (documented in README.md).
const (
	HeadBytes = 512 << 10
	TailBytes = 512 << 10
	// MaxErrorBytes bounds the error line appended at the end.
	MaxErrorBytes = 64 << 10
)

// Results of an ended attempt; Running while it runs, Lost when the agent
// stopped before the attempt ended.
const (
	Running   = "running"
	Succeeded = "succeeded"
	Failed    = "failed"
	Killed    = "killed"
	Lost      = "lost"
	// Waiting: the attempt's input was on no alive member; no failure,
	// the task waits for a holder.
	Waiting = "waiting"
)

// ErrNotFound: no log of that job, task and attempt on this node.
var ErrNotFound = errors.New("no such task log")

// Entry describes one attempt's log.
type Entry struct {
	Job    string    `msgpack:"j" json:"job"`
	Task   string    `msgpack:"t" json:"task"`
	Start  time.Time `msgpack:"s" json:"start"`
	End    time.Time `msgpack:"e" json:"end"` // zero while running
	Result string    `msgpack:"r" json:"result"`
	Size   int64     `msgpack:"z" json:"size"`
	// IO is what the attempt read and wrote; nil while it runs (and for
	// an attempt that ended without saying).
	IO *IO `msgpack:"io,omitempty" json:"io,omitempty"`

	name string // the file's name in the job's directory
}

// Localities of a map attempt's input (IO.Locality).
const (
	Local  = "local"  // every block of the split read from this node's copy
	Remote = "remote" // some block read from another node
)

// IO is what an attempt read and wrote (Writer.SetIO). Its meaning is the
// caller's; the scheduler records:
type IO struct {
	// In: a map's input bytes read (0 for a generator's split); a
	// reduce's shuffle bytes fetched.
	In int64 `msgpack:"i" json:"in_bytes"`
	// Out: a map's output bytes written (its map output, or its part of a
	// map-only job's output); a reduce's output part's bytes.
	Out int64 `msgpack:"o" json:"out_bytes"`
	// Locality of a map's input: Local, Remote, or "" (no input blocks:
	// a generator's split, a reduce).
	Locality string `msgpack:"l,omitempty" json:"locality,omitempty"`
}

// nameField is v as the last field of a log's name: <in>-<out>[-locality].
func (v IO) nameField() string {
	f := strconv.FormatInt(v.In, 10) + "-" + strconv.FormatInt(v.Out, 10)
	if v.Locality != "" {
		f += "-" + v.Locality
	}
	return f
}

func parseIO(f string) (*IO, bool) {
	p := strings.Split(f, "-")
	if len(p) < 2 || len(p) > 3 {
		return nil, false
	}
	in, err1 := strconv.ParseInt(p[0], 10, 64)
	out, err2 := strconv.ParseInt(p[1], 10, 64)
	if err1 != nil || err2 != nil || in < 0 || out < 0 {
		return nil, false
	}
	v := &IO{In: in, Out: out}
	if len(p) == 3 {
		if p[2] != Local && p[2] != Remote {
			return nil, false
		}
		v.Locality = p[2]
	}
	return v, true
}

// Options configure a Store.
type Options struct {
	// Admit, if set, is asked before log bytes are written under dir
	// (a job's log directory): it returns an error when writing need
	// more bytes would leave less free space than the node keeps
	// (disk.Guard.Check). It may be called concurrently and must not
	// block for long. A refused log stops growing: see Writer.
	Admit func(dir string, need int64) error
}

// admitChunk is how many bytes a Writer asks Admit for at a time.
const admitChunk = 64 << 10

// Store is a node's task log directory. It is safe for concurrent use.
type Store struct {
	dir   string
	admit func(dir string, need int64) error
}

// Open opens (creating) the log directory dir. Logs of attempts that were
// running when the agent stopped are marked lost.
func Open(dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("task logs: %w", err)
	}
	s := &Store{dir: dir, admit: opts.Admit}
	jobs, err := s.Jobs()
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		ents, _ := s.List(j)
		for _, e := range ents {
			if e.Result == Running {
				p := s.path(e.Job, e.Task, e.Start, Running, nil)
				os.Rename(p, s.path(e.Job, e.Task, e.Start, Lost, nil))
			}
		}
	}
	return s, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// ValidName reports whether a job or task name may name a log: lower-case
// letters, digits and '-', at most 64 bytes (the scheduler's IDs).
func ValidName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func (s *Store) path(job, task string, start time.Time, result string, v *IO) string {
	name := task + "." + strconv.FormatInt(start.UnixNano(), 10)
	if result != Running {
		name += "." + result
		if v != nil {
			name += "." + v.nameField()
		}
	}
	return filepath.Join(s.dir, job, name+".log")
}

// Create starts the log of an attempt of task that starts now.
func (s *Store) Create(job, task string, start time.Time) (*Writer, error) {
	if !ValidName(job) || !ValidName(task) {
		return nil, fmt.Errorf("task log: bad name %q/%q", job, task)
	}
	if err := os.MkdirAll(filepath.Join(s.dir, job), 0o700); err != nil {
		return nil, fmt.Errorf("task log: %w", err)
	}
	p := s.path(job, task, start, Running, nil)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("task log: %w", err)
	}
	return &Writer{s: s, f: f, job: job, task: task, start: start, path: p, dir: filepath.Dir(p)}, nil
}

// Jobs lists the jobs with logs here.
func (s *Store) Jobs() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("task logs: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && ValidName(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// List returns the job's attempt logs here, by task, then start.
func (s *Store) List(job string) ([]Entry, error) {
	if !ValidName(job) {
		return nil, nil
	}
	ents, err := os.ReadDir(filepath.Join(s.dir, job))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("task logs: %w", err)
	}
	var out []Entry
	for _, de := range ents {
		e, ok := parseName(job, de.Name())
		if !ok {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue // renamed or removed meanwhile
		}
		e.Size = fi.Size()
		if e.Result != Running {
			e.End = fi.ModTime()
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Task != out[j].Task {
			return out[i].Task < out[j].Task
		}
		return out[i].Start.Before(out[j].Start)
	})
	return out, nil
}

func parseName(job, name string) (Entry, bool) {
	base, ok := strings.CutSuffix(name, ".log")
	if !ok {
		return Entry{}, false
	}
	f := strings.Split(base, ".")
	if len(f) < 2 || len(f) > 4 || !ValidName(f[0]) {
		return Entry{}, false
	}
	ns, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return Entry{}, false
	}
	e := Entry{Job: job, Task: f[0], Start: time.Unix(0, ns), Result: Running, name: name}
	if len(f) == 4 {
		if e.IO, ok = parseIO(f[3]); !ok {
			return Entry{}, false
		}
	}
	if len(f) >= 3 {
		switch f[2] {
		case Succeeded, Failed, Killed, Lost, Waiting:
			e.Result = f[2]
		default:
			return Entry{}, false
		}
	}
	return e, true
}

// Open opens an attempt's log for reading from offset. It returns the
// file and its entry (the size as of now). A running log grows; read
// again after it changes, or until its entry says it ended.
func (s *Store) Open(job, task string, start time.Time, offset int64) (io.ReadCloser, Entry, error) {
	return s.open(job, task, start, offset, true)
}

func (s *Store) open(job, task string, start time.Time, offset int64, retry bool) (io.ReadCloser, Entry, error) {
	ents, err := s.List(job)
	if err != nil {
		return nil, Entry{}, err
	}
	for _, e := range ents {
		if e.Task != task || !e.Start.Equal(start) {
			continue
		}
		f, err := os.Open(filepath.Join(s.dir, job, e.name))
		if errors.Is(err, os.ErrNotExist) && e.Result == Running && retry {
			// It ended between the listing and the open.
			return s.open(job, task, start, offset, false)
		}
		if err != nil {
			return nil, Entry{}, fmt.Errorf("task log: %w", err)
		}
		if offset < 0 || offset > e.Size {
			offset = e.Size
		}
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, Entry{}, fmt.Errorf("task log: %w", err)
		}
		return f, e, nil
	}
	return nil, Entry{}, fmt.Errorf("%w: %s %s started %s", ErrNotFound, job, task, start.Format(time.RFC3339Nano))
}

// RemoveJob removes the job's logs (after its history is deleted). Logs
// still being written are removed too; their writers keep writing to the
// unlinked files until they end.
func (s *Store) RemoveJob(job string) error {
	if !ValidName(job) {
		return nil
	}
	return os.RemoveAll(filepath.Join(s.dir, job))
}

// Writer is one attempt's log. Write and Logf may be called concurrently
// (a streaming task's children write from their own goroutines); Finish
// once, after the last write.
//
// With Options.Admit, a Writer asks before it writes (admitChunk bytes at
// a time). Once refused, the log stops there: it drops what is written
// after (Write still succeeds), and Finish ends it with a line saying how
// much was left out and why, then the result and the error cut to
// MaxCutErrorBytes: at most a few KiB past the refusal.
type Writer struct {
	s     *Store
	job   string
	task  string
	start time.Time
	path  string
	dir   string

	mu      sync.Mutex
	io      *IO // set by SetIO
	f       *os.File
	written int64  // bytes written to the file (the head)
	tail    []byte // ring of the last TailBytes once the head is full
	tpos    int
	dropped int64 // bytes left out between head and tail
	err     error // first write error; later writes are dropped
	done    bool
	last    byte // the last byte written, to end a cut line before the error

	admitted int64 // bytes Admit allowed that are not written yet
	full     error // Admit's refusal; nothing more is written but the end
	refused  int64 // bytes left out because of it
}

// MaxCutErrorBytes bounds the error line of a log cut by Admit.
const MaxCutErrorBytes = 1 << 10

// allow asks Admit for room for k more bytes. Called with w.mu held.
func (w *Writer) allow(k int64) bool {
	if w.full != nil {
		return false
	}
	if w.s.admit == nil {
		return true
	}
	if w.admitted >= k {
		w.admitted -= k
		return true
	}
	need := max(k, admitChunk)
	if err := w.s.admit(w.dir, need); err != nil {
		w.full = err
		return false
	}
	w.admitted = need - k
	return true
}

// Write appends p, keeping the head and the tail. It never fails: a
// task's output must not fail because its log could not be written.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.err != nil {
		return len(p), nil
	}
	n := len(p)
	if w.full != nil {
		w.refused += int64(n)
		return n, nil
	}
	if n > 0 {
		w.last = p[n-1]
	}
	if room := HeadBytes - w.written; room > 0 {
		k := min(int64(len(p)), room)
		if !w.allow(k) {
			w.refused += int64(n)
			return n, nil
		}
		m, err := w.f.Write(p[:k])
		w.written += int64(m)
		if err != nil {
			w.err = err
			return n, nil
		}
		p = p[k:]
	}
	for len(p) > 0 {
		if len(w.tail) < TailBytes {
			k := min(len(p), TailBytes-len(w.tail))
			w.tail = append(w.tail, p[:k]...)
			p = p[k:]
			continue
		}
		k := copy(w.tail[w.tpos:], p)
		w.dropped += int64(k)
		w.tpos = (w.tpos + k) % TailBytes
		p = p[k:]
	}
	return n, nil
}

// Logf writes a line: the time, then the formatted text.
func (w *Writer) Logf(format string, args ...any) {
	fmt.Fprintf(w, "%s %s\n", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), fmt.Sprintf(format, args...))
}

// SetIO records what the attempt read and wrote; Finish puts it in the
// log's last line and its name. Call it before Finish.
func (w *Writer) SetIO(v IO) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.io = &v
}

// Finish ends the log with its result and the error (nil for none), and
// closes it. It is safe to call more than once; later calls do nothing.
func (w *Writer) Finish(result string, err error) {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return
	}
	var b strings.Builder
	if w.dropped > 0 {
		fmt.Fprintf(&b, "\n[… %d bytes of this log left out; it keeps the first %d KiB and the last %d KiB …]\n", w.dropped, HeadBytes>>10, TailBytes>>10)
	}
	if len(w.tail) > 0 {
		b.Write(w.tail[w.tpos:])
		b.Write(w.tail[:w.tpos])
	}
	if b.Len() > 0 && !w.allow(int64(b.Len())) {
		w.refused += w.dropped + int64(len(w.tail))
		b.Reset()
	}
	if w.last != 0 && w.last != '\n' {
		b.WriteByte('\n')
	}
	maxErr := MaxErrorBytes
	if w.full != nil {
		maxErr = MaxCutErrorBytes
		msg := w.full.Error()
		if len(msg) > MaxCutErrorBytes {
			msg = msg[:MaxCutErrorBytes] + "…"
		}
		fmt.Fprintf(&b, "[… %d bytes of this log left out: %s …]\n", w.refused, msg)
	}
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	if w.io != nil {
		fmt.Fprintf(&b, "%s read %d bytes", now, w.io.In)
		switch w.io.Locality {
		case Local:
			b.WriteString(" from local copies")
		case Remote:
			b.WriteString(" (not all from local copies)")
		}
		fmt.Fprintf(&b, "; wrote %d bytes\n", w.io.Out)
	}
	fmt.Fprintf(&b, "%s attempt %s", now, result)
	if err != nil {
		msg := err.Error()
		if len(msg) > maxErr {
			msg = msg[:maxErr] + "…"
		}
		fmt.Fprintf(&b, ": %s", msg)
	}
	b.WriteByte('\n')
	if w.err == nil {
		_, w.err = io.WriteString(w.f, b.String())
	}
	w.f.Close()
	w.done = true
	w.tail = nil
	ended := w.io
	w.mu.Unlock()

	if result == Running {
		result = Lost
	}
	os.Rename(w.path, w.s.path(w.job, w.task, w.start, result, ended))
}

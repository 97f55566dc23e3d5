package streaming

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"
	"sync"

	"shoal.dev/shoal/job"
)

// Standard error limits.
const (
	// stderrLines is how many of a command's last ordinary stderr lines are
	// kept for its error message.
	stderrLines = 20
	// maxStderrLine is the longest stderr line kept, in bytes; longer
	// ones are cut, and status messages too.
	maxStderrLine = 256
	// stderrBufferSize is the read buffer of stderr. A reporter line
	// longer than it is not recognized.
	stderrBufferSize = 64 << 10
)

// taskState is what the stderr readers of a task's children report: the
// counters and the status. It is safe for concurrent use.
type taskState struct {
	mu       sync.Mutex
	counters job.Counters
	status   string
	progress int64 // reporter lines seen, for the task timeout
}

func newTaskState() *taskState {
	return &taskState{counters: make(job.Counters)}
}

// add adds n to the counter name.
func (s *taskState) add(name string, n int64) {
	s.mu.Lock()
	s.counters.Add(name, n)
	s.progress++
	s.mu.Unlock()
}

func (s *taskState) setStatus(msg string) {
	s.mu.Lock()
	s.status = msg
	s.progress++
	s.mu.Unlock()
}

// Progress counts the reporter lines (counter or status) the task's
// children wrote: each one resets the task timeout, as in Hadoop.
func (s *taskState) Progress() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.progress
}

// Counters returns a copy of the counters.
func (s *taskState) Counters() job.Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counters.Clone()
}

// Status returns the last status a child reported, "" if none.
func (s *taskState) Status() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// stderrTail keeps the last stderrLines lines, each cut to maxStderrLine
// bytes. The zero value is empty. It is not safe for concurrent use.
type stderrTail struct {
	lines [stderrLines]string
	next  int // where the next line goes
	n     int // lines held
}

func (t *stderrTail) add(line []byte) {
	t.lines[t.next] = cut(line, maxStderrLine)
	t.next = (t.next + 1) % stderrLines
	t.n = min(t.n+1, stderrLines)
}

// get returns the lines held, oldest first.
func (t *stderrTail) get() []string {
	out := make([]string, 0, t.n)
	for i := range t.n {
		out = append(out, t.lines[(t.next-t.n+i+stderrLines)%stderrLines])
	}
	return out
}

// cut returns b as a string of at most n bytes, "..." marking a cut.
func cut(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

var (
	reporterCounter = []byte("reporter:counter:")
	reporterStatus  = []byte("reporter:status:")
)

// readStderr reads a child's standard error until EOF or a read error,
// reporting counters and status to st and keeping the other lines in tail.
// A line longer than the read buffer is taken as its first part.
func readStderr(r io.Reader, st *taskState, tail *stderrTail) {
	br := bufio.NewReaderSize(r, stderrBufferSize)
	skipping := false // the rest of a long line
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if !skipping {
				stderrLine(bytes.TrimSuffix(line, []byte("\n")), st, tail)
			}
			skipping = line[len(line)-1] != '\n'
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// stderrLine handles one line of standard error.
func stderrLine(line []byte, st *taskState, tail *stderrTail) {
	switch {
	case bytes.HasPrefix(line, reporterCounter):
		// GROUP,NAME,N as Hadoop splits it: exactly three fields.
		f := strings.Split(string(line[len(reporterCounter):]), ",")
		if len(f) == 3 {
			if n, err := strconv.ParseInt(strings.TrimSpace(f[2]), 10, 64); err == nil {
				st.add(f[0]+":"+f[1], n)
				return
			}
		}
	case bytes.HasPrefix(line, reporterStatus):
		st.setStatus(cut(line[len(reporterStatus):], maxStderrLine))
		return
	}
	tail.add(line)
}

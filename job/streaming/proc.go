package streaming

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"shoal.dev/shoal/childproc"
	"shoal.dev/shoal/job"
)

// ErrAborted is returned (wrapped) by Map, Reduce and Close of a task that
// was aborted.
var ErrAborted = errors.New("aborted")

// ExitError is the error of a task whose command failed: it exited with a
// non-zero status or was killed by a signal.
type ExitError struct {
	// Role is "mapper", "combiner" or "reducer".
	Role string
	// Command is the command line.
	Command string
	// Status is the exit status; -1 when the command was killed.
	Status int
	// Signal is the signal that killed the command; 0 when it exited.
	Signal syscall.Signal
	// Stderr holds the last lines the command wrote to its standard
	// error, reporter lines excepted, oldest first.
	Stderr []string
}

// Error describes the failure, the last stderr lines on lines of their
// own: `streaming mapper "python3 m.py" exited with status 1; last stderr
// lines:` and the lines. Statuses 127 and 126, which the shell returns for
// a command it cannot find or cannot execute, are spelt out.
func (e *ExitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "streaming %s %s ", e.Role, quoteCommand(e.Command))
	switch {
	case e.Signal != 0:
		fmt.Fprintf(&b, "killed by signal %d (%v)", int(e.Signal), e.Signal)
	case e.Status == 127:
		b.WriteString("exited with status 127: command not found")
	case e.Status == 126:
		b.WriteString("exited with status 126: permission denied: not executable")
	default:
		fmt.Fprintf(&b, "exited with status %d", e.Status)
	}
	if len(e.Stderr) > 0 {
		b.WriteString("; last stderr lines:")
		for _, l := range e.Stderr {
			b.WriteString("\n")
			b.WriteString(l)
		}
	}
	return b.String()
}

// quoteCommand quotes a command for a message, cut to 200 bytes: task
// errors travel in small gossip records.
func quoteCommand(cmd string) string {
	const maxQuoted = 200
	if len(cmd) > maxQuoted {
		return strconv.Quote(cmd[:maxQuoted]) + "..."
	}
	return strconv.Quote(cmd)
}

// Pipe buffering between a task and its child: the task writes the child's
// input in batches of about batchSize bytes through a writer goroutine, at
// most nBatches of them at once, and a reader goroutine reads the child's
// output in chunks of chunkSize, at most nChunks of them unhandled.
const (
	batchSize = 64 << 10
	nBatches  = 4
	chunkSize = 64 << 10
	nChunks   = 4
	// maxKeptBuffer is the largest batch or partial line buffer kept for
	// reuse; a larger one, grown for a long record, is dropped.
	maxKeptBuffer = 1 << 20
)

// procConfig says how to start a child.
type procConfig struct {
	role, command string
	shell         string
	dir           string
	env           []string
	cred          *syscall.Credential // nil: run as the agent's user
	tracker       ProcTracker         // nil: none
	maxLine       int
	state         *taskState
	// emit receives the key and value of each output line, from the
	// goroutine calling the proc's methods. They are valid only during the
	// call.
	emit func(key, value []byte) error
	// split cuts each output line into key and value; the zero value is
	// the default (the first tab).
	split fieldSplit
	// log, if not nil, receives a copy of everything the child writes to
	// its standard error (TaskInfo.Log), from the stderr reader.
	log io.Writer
}

// proc is one child process and the goroutines that pump its pipes.
//
// Its methods put, finish and abort are called from one goroutine, the
// task's (the one calling Map, Reduce or Close), which also handles the
// child's output: the stdout reader hands it chunks, and it parses them
// into lines and emits them. Every wait of the task's goroutine also
// handles output chunks, so a child blocked writing its output, while the
// task waits to write its input, is always unblocked. abort may also be
// called from any goroutine.
type proc struct {
	role, command string
	pgid          int
	cmd           *exec.Cmd
	lifeline      *os.File    // closed once the group is killed: see lifelineScript
	tracker       ProcTracker // nil: none
	emit          func(key, value []byte) error
	split         fieldSplit // cuts output lines into key and value
	maxLine       int
	state         *taskState
	log           io.Writer // a copy of stderr goes here; nil: none

	stdin, stdout, stderr *pipeEnd

	batches     chan []byte   // to the writer; closed when the input ends
	free        chan []byte   // from the writer: written batches
	writeFailed chan struct{} // closed by the writer at its first failed write
	chunks      chan []byte   // from the stdout reader; closed at its end
	chunkFree   chan []byte   // to the stdout reader: handled chunks
	stderrDone  chan struct{} // closed by the stderr reader at its end
	exited      chan struct{} // closed by the reaper when the child is reaped
	aborted     chan struct{} // closed by abort
	abortOnce   sync.Once
	wg          sync.WaitGroup // the four goroutines

	mu          sync.Mutex
	groupKilled bool // the reaper killed the group: abort need not

	// Set by a goroutine before it closes its channel.
	readErr error      // chunks: a stdout read error other than EOF
	tail    stderrTail // stderrDone
	waitErr error      // exited: the child's exit

	// Owned by the task's goroutine.
	out         chan []byte // chunks; nil after their end
	cur         []byte      // the batch being filled
	carry       []byte      // the start of a line split across chunks
	inputClosed bool
	finished    bool
	result      error // once finished
}

// pipeEnd is our end of a pipe to the child. close may be called more than
// once, from any goroutine, also during a Read or Write, which it makes
// return.
type pipeEnd struct {
	*os.File
	once sync.Once
}

func (p *pipeEnd) close() { p.once.Do(func() { _ = p.File.Close() }) }

// startProc starts a child and its goroutines.
func startProc(pc procConfig) (*proc, error) {
	var ends [6]*os.File // stdin r, w; stdout r, w; stderr r, w
	for i := 0; i < len(ends); i += 2 {
		r, w, err := os.Pipe()
		if err != nil {
			for _, f := range ends[:i] {
				_ = f.Close()
			}
			return nil, fmt.Errorf("start streaming %s %s: %w", pc.role, quoteCommand(pc.command), err)
		}
		ends[i], ends[i+1] = r, w
	}
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		for _, f := range ends {
			_ = f.Close()
		}
		return nil, fmt.Errorf("start streaming %s %s: %w", pc.role, quoteCommand(pc.command), err)
	}
	cmd := exec.Command(pc.shell, "-c", lifelineScript, "shoal-task", pc.shell, pc.command)
	cmd.Dir = pc.dir
	cmd.Env = pc.env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = ends[0], ends[3], ends[5]
	cmd.ExtraFiles = []*os.File{lifeR} // descriptor 3: see lifelineScript
	cmd.SysProcAttr = sysProcAttr(pc.cred)
	err = childproc.Start(cmd)
	// The child's ends are the child's now.
	_, _, _, _ = ends[0].Close(), ends[3].Close(), ends[5].Close(), lifeR.Close()
	if err != nil {
		_, _, _, _ = ends[1].Close(), ends[2].Close(), ends[4].Close(), lifeW.Close()
		return nil, fmt.Errorf("start streaming %s %s: %w", pc.role, quoteCommand(pc.command), err)
	}
	if pc.tracker != nil {
		pc.tracker.Started(cmd.Process.Pid)
	}

	p := &proc{
		role:        pc.role,
		command:     pc.command,
		pgid:        cmd.Process.Pid, // Setpgid: the child leads a group of its own
		cmd:         cmd,
		lifeline:    lifeW,
		tracker:     pc.tracker,
		emit:        pc.emit,
		split:       orDefault(pc.split),
		maxLine:     pc.maxLine,
		state:       pc.state,
		log:         pc.log,
		stdin:       &pipeEnd{File: ends[1]},
		stdout:      &pipeEnd{File: ends[2]},
		stderr:      &pipeEnd{File: ends[4]},
		batches:     make(chan []byte, nBatches),
		free:        make(chan []byte, nBatches),
		writeFailed: make(chan struct{}),
		chunks:      make(chan []byte, nChunks),
		chunkFree:   make(chan []byte, nChunks),
		stderrDone:  make(chan struct{}),
		exited:      make(chan struct{}),
		aborted:     make(chan struct{}),
	}
	p.out = p.chunks
	p.cur = make([]byte, 0, batchSize)
	for range nBatches - 1 {
		p.free <- make([]byte, 0, batchSize)
	}
	for range nChunks {
		p.chunkFree <- make([]byte, chunkSize)
	}
	p.wg.Add(4)
	go p.writeStdin()
	go p.readStdout()
	go p.readStderr()
	go p.reap()
	return p, nil
}

// writeStdin writes the batches it is given to the child's standard input
// and hands them back, until the input ends or the proc is aborted; then it
// closes the child's standard input. After a failed write (the child closed
// its input or exited) it drops the batches.
func (p *proc) writeStdin() {
	defer p.wg.Done()
	defer p.stdin.close()
	failed := false
	for {
		select {
		case b, ok := <-p.batches:
			if !ok {
				return
			}
			if !failed {
				if _, err := p.stdin.Write(b); err != nil {
					failed = true
					close(p.writeFailed)
				}
			}
			p.free <- b // never blocks: there are only nBatches batches
		case <-p.aborted:
			return
		}
	}
}

// readStdout reads the child's standard output into free chunks and hands
// them over, until EOF, a read error or an abort; then it closes chunks.
func (p *proc) readStdout() {
	defer p.wg.Done()
	defer close(p.chunks)
	defer p.stdout.close()
	for {
		var b []byte
		select {
		case b = <-p.chunkFree:
		case <-p.aborted:
			return
		}
		n, err := p.stdout.Read(b[:cap(b)])
		if n > 0 {
			p.chunks <- b[:n] // never blocks: there are only nChunks chunks
		} else {
			p.chunkFree <- b
		}
		if err != nil {
			if err != io.EOF {
				p.readErr = err
			}
			return
		}
	}
}

// readStderr reads the child's standard error until EOF (or until abort
// closes it).
func (p *proc) readStderr() {
	defer p.wg.Done()
	defer close(p.stderrDone)
	defer p.stderr.close()
	var r io.Reader = p.stderr
	if p.log != nil {
		r = io.TeeReader(r, p.log)
	}
	readStderr(r, p.state, &p.tail)
}

// reap waits for the child to exit, kills what it left running in its
// process group, and reaps it. Where it can (Linux), it kills the group
// before reaping the child, whose zombie keeps the group's ID from being
// reused.
func (p *proc) reap() {
	defer p.wg.Done()
	unreaped := waitExited(p.cmd.Process.Pid)
	var err error
	if !unreaped {
		err = p.cmd.Wait()
	}
	p.mu.Lock()
	p.groupKilled = true
	killGroup(p.pgid)
	p.mu.Unlock()
	_ = p.lifeline.Close()
	if p.tracker != nil {
		p.tracker.Ended(p.pgid)
	}
	if unreaped {
		err = p.cmd.Wait()
	}
	p.waitErr = err
	close(p.exited)
}

// killGroup sends SIGKILL to the process group pgid. A group that is gone
// already is no error.
func killGroup(pgid int) { _ = syscall.Kill(-pgid, syscall.SIGKILL) }

// abort kills the child's process group, closes the pipes and waits for
// the goroutines to end. It may be called more than once, from any
// goroutine, also while the task's goroutine runs a method of p, which then
// returns ErrAborted.
func (p *proc) abort() {
	p.abortOnce.Do(func() {
		close(p.aborted)
		p.mu.Lock()
		if !p.groupKilled {
			killGroup(p.pgid)
		}
		p.mu.Unlock()
		p.stdin.close()
		p.stdout.close()
		p.stderr.close()
	})
	p.wg.Wait()
}

// put writes a record to the child's input: key<TAB>value (or key alone
// when value is empty) when keyed, else value; then a newline. It handles
// the output ready meanwhile. Once the child has ended, put drops records
// and returns how it ended: nil if it exited with status 0 (it stopped
// reading early).
func (p *proc) put(key, value []byte, keyed bool) error {
	if p.finished {
		return p.result
	}
	if keyed {
		p.cur = job.AppendRecord(p.cur, key, value)
	} else {
		p.cur = append(p.cur, value...)
		p.cur = append(p.cur, '\n')
	}
	if len(p.cur) >= batchSize {
		return p.flush()
	}
	return p.drain()
}

// flush hands the current batch to the writer and waits for a free one,
// handling output meanwhile. If the child stops reading its input or exits
// meanwhile, flush finishes it.
func (p *proc) flush() error {
	p.batches <- p.cur // never blocks: there are only nBatches batches
	p.cur = nil
	for {
		select {
		case b := <-p.free:
			if cap(b) > maxKeptBuffer {
				b = make([]byte, 0, batchSize)
			}
			p.cur = b[:0]
			return p.drain()
		case c, ok := <-p.out:
			if err := p.handle(c, ok); err != nil {
				return p.fail(err)
			}
		case <-p.writeFailed:
			return p.finish()
		case <-p.exited:
			return p.finish()
		case <-p.aborted:
			return p.fail(p.abortErr())
		}
	}
}

// drain handles the output chunks ready, without waiting.
func (p *proc) drain() error {
	for p.out != nil {
		select {
		case c, ok := <-p.out:
			if err := p.handle(c, ok); err != nil {
				return p.fail(err)
			}
		default:
			return nil
		}
	}
	return nil
}

// finish ends the child's input, handles its output to the end, waits for
// it to exit and for the goroutines to end, and returns how it ended: nil,
// an *ExitError, or another error. Later calls return the same.
func (p *proc) finish() error {
	if p.finished {
		return p.result
	}
	if !p.inputClosed {
		p.inputClosed = true
		if len(p.cur) > 0 {
			p.batches <- p.cur // never blocks
		}
		p.cur = nil
		close(p.batches)
	}
	exited := p.exited
	for p.out != nil || exited != nil {
		select {
		case c, ok := <-p.out:
			if err := p.handle(c, ok); err != nil {
				return p.fail(err)
			}
		case <-exited:
			exited = nil
			// Whatever input is left, nobody will read it: make a write
			// blocked on a pipe still open in a stray process return.
			p.stdin.close()
		case <-p.aborted:
			return p.fail(p.abortErr())
		}
	}
	select {
	case <-p.stderrDone:
	case <-p.aborted:
		return p.fail(p.abortErr())
	}
	p.wg.Wait() // the writer and the reaper are done or about to be
	p.finished = true
	p.carry = nil
	p.result = p.exitErr()
	return p.result
}

// fail aborts the child and makes err the proc's result.
func (p *proc) fail(err error) error {
	p.abort()
	p.finished = true
	p.result = err
	p.cur, p.carry = nil, nil
	return err
}

func (p *proc) abortErr() error {
	return fmt.Errorf("streaming %s %s: %w", p.role, quoteCommand(p.command), ErrAborted)
}

// exitErr is the error of the child's exit, once reaped, or of reading its
// output.
func (p *proc) exitErr() error {
	if p.waitErr != nil {
		var ee *exec.ExitError
		if !errors.As(p.waitErr, &ee) {
			return fmt.Errorf("wait for streaming %s %s: %w", p.role, quoteCommand(p.command), p.waitErr)
		}
		e := &ExitError{Role: p.role, Command: p.command, Status: ee.ExitCode(), Stderr: p.tail.get()}
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			e.Signal = ws.Signal()
		}
		return e
	}
	if p.readErr != nil {
		return fmt.Errorf("read streaming %s %s output: %w", p.role, quoteCommand(p.command), p.readErr)
	}
	return nil
}

// handle handles an output chunk c (ok) or the output's end (!ok).
func (p *proc) handle(c []byte, ok bool) error {
	if !ok {
		p.out = nil
		select {
		case <-p.aborted:
			return p.abortErr() // not the output's end: the reader was stopped
		default:
		}
		if p.readErr != nil {
			return fmt.Errorf("read streaming %s %s output: %w", p.role, quoteCommand(p.command), p.readErr)
		}
		if len(p.carry) > 0 { // a last line with no newline
			line := p.carry
			p.carry = nil
			return p.line(line)
		}
		return nil
	}
	err := p.lines(c)
	p.chunkFree <- c[:cap(c)] // never blocks: there are only nChunks chunks
	return err
}

// lines emits the lines that data, after the carried start of a line,
// completes, and carries the start of the next.
func (p *proc) lines(data []byte) error {
	if len(p.carry) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if len(p.carry)+len(data) > p.maxLine {
				return p.longLine()
			}
			p.carry = append(p.carry, data...)
			return nil
		}
		if len(p.carry)+i > p.maxLine {
			return p.longLine()
		}
		p.carry = append(p.carry, data[:i]...)
		if err := p.line(p.carry); err != nil {
			return err
		}
		p.carry = p.carry[:0]
		if cap(p.carry) > maxKeptBuffer {
			p.carry = nil
		}
		data = data[i+1:]
	}
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		if i > p.maxLine {
			return p.longLine()
		}
		if err := p.line(data[:i:i]); err != nil {
			return err
		}
		data = data[i+1:]
	}
	if len(data) > p.maxLine {
		return p.longLine()
	}
	p.carry = append(p.carry, data...)
	return nil
}

func orDefault(f fieldSplit) fieldSplit {
	if len(f.sep) == 0 {
		return defaultSplit
	}
	return f
}

// line emits an output line cut by p.split: by default the key before
// its first tab, the value after; a line with no tab is all key.
func (p *proc) line(l []byte) error {
	if p.split.keyFields == 1 && len(p.split.sep) == 1 {
		if i := bytes.IndexByte(l, p.split.sep[0]); i >= 0 {
			return p.emit(l[:i:i], l[i+1:])
		}
		return p.emit(l, l[len(l):])
	}
	return p.emit(p.split.split(l))
}

func (p *proc) longLine() error {
	limit := strconv.Itoa(p.maxLine) + " bytes"
	if p.maxLine%(1<<20) == 0 {
		limit = strconv.Itoa(p.maxLine>>20) + " MiB"
	}
	return fmt.Errorf("streaming %s %s wrote a line longer than %s; is it writing binary data? (%w)",
		p.role, quoteCommand(p.command), limit, job.ErrLineTooLong)
}

package worker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"shoal.dev/shoal/job"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"shoal.dev/shoal/childproc"
)

// helloTimeout bounds how long a new worker may take to answer its hello.
const helloTimeout = 30 * time.Second

// proc is one worker process and the agent's ends of its pipes.
type proc struct {
	bin   string
	cmd   *exec.Cmd
	pid   int
	life  *os.File // the lifeline's write end: closed when the worker must go
	toW   *os.File
	w     *bufio.Writer
	fromW *os.File
	fr    *frameReader
	tail  *outputTail
	minor int // the worker's ProtoMinor

	exited  chan struct{} // closed once the process is reaped and its output read
	waitErr error         // set before exited is closed

	killOnce sync.Once
}

// start starts a worker of bin and exchanges hellos.
func start(ctx context.Context, bin string, env []string) (*proc, error) {
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			_ = f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	lifeR, lifeW, err := pipe()
	var inR, inW, outR, outW, logR, logW *os.File
	if err == nil {
		inR, inW, err = pipe()
	}
	if err == nil {
		outR, outW, err = pipe()
	}
	if err == nil {
		logR, logW, err = pipe()
	}
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("start a worker: %w", err)
	}
	cmd := exec.Command(bin)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logW, logW
	cmd.ExtraFiles = []*os.File{lifeR, inR, outW} // descriptors 3, 4, 5
	cmd.SysProcAttr = sysProcAttr()
	err = childproc.Start(cmd)
	_, _, _, _ = lifeR.Close(), inR.Close(), outW.Close(), logW.Close() // the worker's now
	if err != nil {
		_, _, _, _ = lifeW.Close(), inW.Close(), outR.Close(), logR.Close()
		return nil, fmt.Errorf("the shipped program cannot run on this node: %w", execError(err))
	}
	p := &proc{
		bin: bin, cmd: cmd, pid: cmd.Process.Pid, life: lifeW,
		toW: inW, w: bufio.NewWriterSize(inW, 256<<10),
		fromW: outR, fr: newFrameReader(outR),
		tail: &outputTail{}, exited: make(chan struct{}),
	}
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		p.tail.readFrom(logR)
		_ = logR.Close()
	}()
	go func() {
		err := cmd.Wait()
		<-logDone
		p.waitErr = err
		p.killGroup()
		_ = outR.Close()
		close(p.exited)
	}()
	if err := p.hello(ctx); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

// hello sends the agent's hello and checks the worker's answer.
func (p *proc) hello(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, helloTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, p.kill)
	defer stop()
	var h hello
	err := writeMsg(p.w, frameHello, hello{Proto: Proto, Minor: ProtoMinor})
	if err == nil {
		err = p.fr.readMsg(frameHello, &h)
	}
	if err != nil {
		if ctx.Err() != nil && errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			return fmt.Errorf("the shipped program did not answer as a Shoal worker within %s", helloTimeout)
		}
		if errors.Is(err, ErrProtocol) {
			return fmt.Errorf("the shipped program does not speak the worker protocol (is it a Go program whose main calls cli.Main?): %w", err)
		}
		return p.deathError("at start, before answering as a Shoal worker (is it a Go program whose main calls cli.Main?)")
	}
	if h.Proto != Proto {
		return fmt.Errorf("the shipped program speaks worker protocol %d, this agent %d: rebuild it against this Shoal version", h.Proto, Proto)
	}
	if h.GOOS != runtime.GOOS || h.GOARCH != runtime.GOARCH {
		return fmt.Errorf("the shipped program runs as %s/%s, this node is %s/%s", h.GOOS, h.GOARCH, runtime.GOOS, runtime.GOARCH)
	}
	p.minor = h.Minor
	return nil
}

// deathError waits a moment for the worker to be reaped and describes
// how it ended, when: "exited with status 2 during task m-000003; last
// output lines: ...".
func (p *proc) deathError(when string) error {
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		p.kill()
		<-p.exited
	}
	var b strings.Builder
	b.WriteString("worker process ")
	b.WriteString(strconv.Itoa(p.pid))
	var ee *exec.ExitError
	switch {
	case errors.As(p.waitErr, &ee) && ee.ExitCode() >= 0:
		fmt.Fprintf(&b, " exited with status %d", ee.ExitCode())
	case errors.As(p.waitErr, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			fmt.Fprintf(&b, " was killed by signal %d (%v)", int(ws.Signal()), ws.Signal())
		} else {
			b.WriteString(" died")
		}
	case p.waitErr != nil:
		fmt.Fprintf(&b, " ended: %v", p.waitErr)
	default:
		b.WriteString(" exited with status 0")
	}
	b.WriteString(" ")
	b.WriteString(when)
	if lines := p.tail.lines(); len(lines) > 0 {
		b.WriteString("; last output lines:")
		for _, l := range lines {
			b.WriteString("\n")
			b.WriteString(l)
		}
	}
	return errors.New(b.String())
}

// kill ends the worker and its process group. It may be called more than
// once, from any goroutine.
func (p *proc) kill() {
	p.killOnce.Do(func() {
		p.killGroup()
		_ = p.life.Close()
		_ = p.toW.Close()
	})
}

// killGroup kills the worker's process group (what user code started
// too). Until the worker is reaped its ID, which is its group's, cannot be
// reused, so this is safe before exited is closed, and once after the
// reaper's Wait.
func (p *proc) killGroup() {
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
}

// alive reports whether the worker has not exited.
func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *proc) describe(name string, params map[string]string) (infoReply, error) {
	var r infoReply
	err := writeMsg(p.w, frameDescribe, describeReq{Name: name, Params: params})
	if err == nil {
		err = p.fr.readMsg(frameInfo, &r)
	}
	if err != nil {
		p.kill()
		if errors.Is(err, ErrProtocol) {
			return r, err
		}
		return r, p.deathError("while describing the job")
	}
	return r, nil
}

// prepare has the worker run the job's Prepare, answering its samples
// with s, and returns the rebuilt job's info.
func (p *proc) prepare(ctx context.Context, q prepareReq, s job.Sampler) (infoReply, error) {
	var r infoReply
	err := writeMsg(p.w, framePrepare, q)
	for err == nil {
		var t byte
		var b []byte
		if t, b, err = p.fr.read(); err != nil {
			break
		}
		if t == frameInfo {
			err = decodeMsg(t, b, &r)
			break
		}
		if t != frameSample {
			err = protoErrorf("frame type %q where %q or %q was due", t, frameSample, frameInfo)
			break
		}
		var sq sampleReq
		if err = decodeMsg(t, b, &sq); err != nil {
			break
		}
		err = writeMsg(p.w, frameKeys, sampleKeys(ctx, s, sq))
	}
	if err != nil {
		p.kill()
		if errors.Is(err, ErrProtocol) {
			return r, err
		}
		return r, p.deathError("while running the job's Prepare")
	}
	return r, nil
}

// sampleKeys takes a Prepare's sample from s, as the reply that carries
// it; a sample too big for a frame is an error of the job's.
func sampleKeys(ctx context.Context, s job.Sampler, q sampleReq) keysReply {
	keys, err := s.Sample(ctx, q.Splits, q.PerSplit)
	if err != nil {
		return keysReply{Err: "sample the input: " + err.Error()}
	}
	size := 16
	for _, k := range keys {
		size += len(k) + 5
	}
	if size > MaxFrame {
		return keysReply{Err: fmt.Sprintf("a sample of %d keys (%d splits, %d records each) takes over %d bytes: sample less", len(keys), q.Splits, q.PerSplit, MaxFrame)}
	}
	return keysReply{Keys: keys}
}

// execError words the error of starting a program.
func execError(err error) error {
	switch {
	case errors.Is(err, syscall.ENOEXEC):
		return errors.New("exec format error: not an executable for this system")
	case errors.Is(err, syscall.EACCES):
		return errors.New("permission denied: not executable")
	}
	return err
}

// outputTail keeps the last lines a worker wrote to stdout and stderr.
type outputTail struct {
	mu  sync.Mutex
	buf []string
}

const (
	tailLines   = 20
	maxTailLine = 256
)

func (t *outputTail) readFrom(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 || len(data) >= 32<<10 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		l := sc.Text()
		if len(l) > maxTailLine {
			l = l[:maxTailLine] + "..."
		}
		t.mu.Lock()
		if len(t.buf) == tailLines {
			t.buf = append(t.buf[:0], t.buf[1:]...)
		}
		t.buf = append(t.buf, l)
		t.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}

func (t *outputTail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.buf...)
}

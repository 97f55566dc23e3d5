package worker

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/vmihailenco/msgpack/v5"

	"shoal.dev/shoal/job"
)

// proxy stands in for a shipped job's Mapper or Reducer on the agent: it
// sends the task's records to its worker and, once the worker answers,
// emits the pairs the worker sends back. Map, Reduce and Close are called
// from the task's goroutine; a reader goroutine, started with the first
// call, reads the worker's frames and is the only caller of the task's
// emitter. Abort, Progress and Status may be called from any goroutine.
type proxy struct {
	pool      *Pool
	w         *proc
	jobID     string
	taskID    string
	reduce    bool
	pairsBack bool // the worker sends output pairs (reduce, map-only)

	// Owned by the task's goroutine.
	out     job.Emitter
	buf     []byte
	started bool
	ended   bool // 'E' sent

	frames   atomic.Int64 // frames received: progress
	userProg atomic.Int64
	status   atomic.Pointer[string]
	aborted  atomic.Bool
	failed   atomic.Bool // the worker ended the task early (an error)

	done chan struct{} // closed by the reader at its end
	// Set by the reader before done is closed.
	result  doneMsg
	readErr error // the worker broke the protocol or died
	emitErr error // the task's emitter failed

	closeOnce sync.Once
}

// begin starts the reader, once.
func (p *proxy) begin(out job.Emitter) {
	if p.started {
		return
	}
	p.started, p.out = true, out
	go p.read()
}

func (p *proxy) read() {
	defer close(p.done)
	for {
		t, b, err := p.w.fr.read()
		if err != nil {
			p.readErr = p.broken(err)
			p.failed.Store(true)
			return
		}
		p.frames.Add(1)
		switch t {
		case frameData:
			if !p.pairsBack {
				p.readErr = p.broken(protoErrorf("output pairs from a map task that writes its own output"))
				p.failed.Store(true)
				return
			}
			for len(b) > 0 {
				k, v, same, rest, err := nextPair(b)
				if err == nil && same {
					err = protoErrorf("an output pair without a key")
				}
				if err != nil {
					p.readErr = p.broken(err)
					p.failed.Store(true)
					return
				}
				b = rest
				if p.emitErr == nil {
					if err := p.out.Emit(k, v); err != nil {
						p.emitErr = err
						p.failed.Store(true)
					}
				}
			}
		case frameStatus:
			var m statusMsg
			if msgpack.Unmarshal(b, &m) == nil {
				p.userProg.Store(m.Progress)
				p.status.Store(&m.Status)
			}
		case frameDone:
			if err := msgpack.Unmarshal(b, &p.result); err != nil {
				p.readErr = p.broken(protoErrorf("malformed 'F' frame: %v", err))
				p.failed.Store(true)
				return
			}
			if p.result.Err != "" {
				p.failed.Store(true)
			}
			return
		default:
			p.readErr = p.broken(protoErrorf("frame type %q during a task", t))
			p.failed.Store(true)
			return
		}
	}
}

// broken turns a read error into the task's: the worker's death (with its
// exit status and last output lines) or a protocol error. The worker is
// killed either way.
func (p *proxy) broken(err error) error {
	if p.aborted.Load() {
		return errAborted
	}
	if errors.Is(err, ErrProtocol) {
		p.w.kill()
		return errors.Join(errors.New("worker process broke the protocol during task "+p.taskID), err)
	}
	return p.w.deathError("during task " + p.taskID)
}

var errAborted = errors.New("task aborted")

// send writes the batch as a data frame.
func (p *proxy) send() error {
	if len(p.buf) == 0 {
		return nil
	}
	err := writeFrame(p.w.w, frameData, p.buf)
	if err == nil {
		err = p.w.w.Flush()
	}
	p.buf = p.buf[:0]
	if err != nil {
		return p.waitErr()
	}
	return nil
}

// waitErr waits for the reader and returns why the task ended early.
func (p *proxy) waitErr() error {
	p.w.kill()
	<-p.done
	return p.endErr()
}

// endErr is the task's error once the reader has ended.
func (p *proxy) endErr() error {
	switch {
	case p.emitErr != nil:
		return p.emitErr
	case p.readErr != nil:
		return p.readErr
	case p.result.Err != "":
		err := errors.New(p.result.Err)
		switch p.result.Kind {
		case errPermanent:
			return job.Permanent(err)
		case errOther:
			return &SystemError{Err: err}
		}
		return err
	}
	return nil
}

// SystemError is a task's failure in its worker outside the job's code:
// writing the map output (a full disk), entering the task's directory.
// The agent's driver sees it returned by user code (the stand-in); a
// runner should count it as the failures of its own machinery, which
// IsSystemError tells.
type SystemError struct {
	Err error
}

func (e *SystemError) Error() string { return e.Err.Error() }

func (e *SystemError) Unwrap() error { return e.Err }

// IsSystemError reports whether err is or wraps a *SystemError.
func IsSystemError(err error) bool {
	var s *SystemError
	return errors.As(err, &s)
}

func (p *proxy) add(key, value []byte, sameKey bool) error {
	if p.failed.Load() {
		return p.waitErr()
	}
	p.buf = appendPair(p.buf, key, value, sameKey)
	if len(p.buf) >= batchBytes {
		return p.send()
	}
	return nil
}

// Map sends one input record to the worker.
func (p *proxy) Map(key, value []byte, out job.Emitter) error {
	p.begin(out)
	return p.add(key, value, false)
}

// Reduce sends one key group to the worker.
func (p *proxy) Reduce(key []byte, values job.Values, out job.Emitter) error {
	p.begin(out)
	first := true
	for v, ok := values.Next(); ok; v, ok = values.Next() {
		if err := p.add(key, v, !first); err != nil {
			return err
		}
		first = false
	}
	return nil
}

// Close ends the task's input and waits for the worker to finish it. A
// worker that served the task to its end serves the job's next one.
func (p *proxy) Close(out job.Emitter) error {
	p.begin(out)
	if err := p.send(); err != nil {
		return err
	}
	err := writeFrame(p.w.w, frameEnd, nil)
	if err == nil {
		err = p.w.w.Flush()
	}
	if err != nil {
		return p.waitErr()
	}
	p.ended = true
	<-p.done
	if err := p.endErr(); err != nil {
		p.w.kill()
		return err
	}
	p.closeOnce.Do(func() { p.pool.put(p.jobID, p.w) })
	return nil
}

// Abort kills the worker: its task is cancelled or has failed.
func (p *proxy) Abort() {
	if p.aborted.CompareAndSwap(false, true) {
		p.w.kill()
	}
}

// Progress counts the frames the worker sent and the progress its user
// code reported, for the task timeout.
func (p *proxy) Progress() int64 { return p.frames.Load() + p.userProg.Load() }

// Status is the status line the worker's user code last reported.
func (p *proxy) Status() string {
	if s := p.status.Load(); s != nil {
		return *s
	}
	return ""
}

// Counters are the worker's counters but those the agent's driver counts
// itself: the records it sent, and the pairs it received.
func (p *proxy) Counters() job.Counters {
	select {
	case <-p.done:
	default:
		return nil // the reader still runs: the task failed before its end
	}
	c := p.result.Counters.Clone()
	if p.reduce {
		delete(c, job.REDUCE_INPUT_GROUPS)
		delete(c, job.REDUCE_OUTPUT_RECORDS)
	} else {
		delete(c, job.MAP_INPUT_RECORDS)
		if p.pairsBack {
			delete(c, job.MAP_OUTPUT_RECORDS)
			delete(c, job.MAP_OUTPUT_BYTES)
		}
	}
	return c
}

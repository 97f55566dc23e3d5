package streaming

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal.dev/shoal/job"
)

// harness builds streaming jobs with a test configuration and checks that
// every child they start is gone, with its goroutines, at the end of the
// test.
type harness struct {
	t     *testing.T
	cfg   Config
	mu    sync.Mutex
	pgids []int
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, cfg: DefaultConfig()}
	h.cfg.TempDir = t.TempDir()
	h.cfg.started = func(pgid int) {
		h.mu.Lock()
		h.pgids = append(h.pgids, pgid)
		h.mu.Unlock()
	}
	t.Cleanup(h.checkGone)
	return h
}

// started returns the process groups started so far.
func (h *harness) started() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.pgids)
}

// checkGone checks that no process group of the test is left, no
// goroutine of the package runs, and no temporary working directory is
// left.
func (h *harness) checkGone() {
	t := h.t
	for _, pgid := range h.started() {
		eventually(t, fmt.Sprintf("process group %d to be gone", pgid), func() bool {
			return len(leftovers(t, pgid)) == 0
		})
	}
	eventually(t, "the package's goroutines to end", func() bool {
		return !strings.Contains(stacks(), "streaming.(*proc)")
	})
	if ents, err := os.ReadDir(h.cfg.TempDir); err != nil || len(ents) > 0 {
		t.Errorf("temporary directory holds %v (%v)", ents, err)
	}
}

// stacks returns every goroutine's stack.
func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// eventually waits for cond, checking it every millisecond, and fails the
// test if it does not hold within 10 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// resolve builds the streaming job from params.
func (h *harness) resolve(params map[string]string) (*job.Job, map[string]string) {
	h.t.Helper()
	spec, err := NewSpec(h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	filled, err := spec.FillParams(params)
	if err != nil {
		h.t.Fatal(err)
	}
	j, err := spec.Build(filled)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := j.Validate(); err != nil {
		h.t.Fatal(err)
	}
	return j, filled
}

// run runs the streaming job of params sequentially and returns its output
// files and counters.
func (h *harness) run(params map[string]string, in []job.Input, reducers int) (map[string]string, job.Counters, error) {
	h.t.Helper()
	j, filled := h.resolve(params)
	return runJob(h.t, j, filled, in, reducers)
}

// runJob runs j sequentially, returning its output files and counters.
func runJob(t *testing.T, j *job.Job, params map[string]string, in []job.Input, reducers int) (map[string]string, job.Counters, error) {
	t.Helper()
	files := make(map[string]*bytes.Buffer)
	create := func(name string) (io.WriteCloser, error) {
		b := new(bytes.Buffer)
		files[name] = b
		return nopCloser{b}, nil
	}
	c, err := job.RunSequential(context.Background(), j, "job-1", params, in, reducers, create)
	out := make(map[string]string, len(files))
	for name, b := range files {
		out[name] = b.String()
	}
	return out, c, err
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// inputs makes inputs of path, data pairs.
func inputs(kv ...string) []job.Input {
	var in []job.Input
	for i := 0; i < len(kv); i += 2 {
		data := kv[i+1]
		in = append(in, job.Input{Path: kv[i], Open: func() (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader(data)), nil
		}})
	}
	return in
}

// writeFile writes a file of mode perm in dir and returns its path.
func writeFile(t *testing.T, dir, name, data string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
	return p
}

// pairs collects emitted pairs as AppendRecord lines.
type pairs struct{ buf []byte }

func (p *pairs) Emit(k, v []byte) error {
	p.buf = job.AppendRecord(p.buf, k, v)
	return nil
}

// counter counts emitted pairs and bytes.
type counter struct{ n, bytes int64 }

func (c *counter) Emit(k, v []byte) error {
	c.n++
	c.bytes += int64(len(k) + len(v))
	return nil
}

// errorsAs is errors.As returning the target.
func errorsAs[T error](err error) (T, bool) {
	var target T
	ok := errors.As(err, &target)
	return target, ok
}

// sortedKeys returns m's keys, sorted.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// member is a process of a process group.
type member struct {
	pid, ppid int
	state     byte
}

// leftovers lists the processes of group pgid that are alive or are
// unreaped children of ours. The zombies of killed grandchildren, which
// init reaps when it will, are not leftovers.
func leftovers(t *testing.T, pgid int) []member {
	t.Helper()
	var left []member
	for _, m := range groupMembers(t, pgid) {
		if m.state != 'Z' || m.ppid == os.Getpid() {
			left = append(left, m)
		}
	}
	return left
}

// groupMembers lists the processes of process group pgid, from /proc.
func groupMembers(t *testing.T, pgid int) []member {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var ms []member
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pgrp, _ := strconv.Atoi(f[2])
		if pgrp == pgid {
			ms = append(ms, member{pid: pid, ppid: ppid, state: f[0][0]})
		}
	}
	return ms
}

package job

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestRunSequentialFiles: each task gets a WorkDir of its own with the
// job's files, executable, removed after the task.
func TestRunSequentialFiles(t *testing.T) {
	src := t.TempDir()
	a := filepath.Join(src, "a.sh")
	b := filepath.Join(src, "sub", "b.txt")
	if err := os.Mkdir(filepath.Dir(b), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a, []byte("echo a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte("bee"), 0o644); err != nil {
		t.Fatal(err)
	}

	var dirs []string
	check := func(ti TaskInfo) error {
		dirs = append(dirs, ti.WorkDir)
		for name, data := range map[string]string{"a.sh": "echo a\n", "b.txt": "bee"} {
			p := filepath.Join(ti.WorkDir, name)
			got, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			if string(got) != data || fi.Mode().Perm() != 0o755 {
				return fmt.Errorf("%s: %q, mode %v", p, got, fi.Mode())
			}
		}
		if ents, err := os.ReadDir(ti.WorkDir); err != nil || len(ents) != 2 {
			return fmt.Errorf("work dir holds %v (%v)", ents, err)
		}
		return nil
	}
	j := wordJob()
	j.Files = []string{a, b}
	newMapper := j.NewMapper
	j.NewMapper = func(ti TaskInfo) (Mapper, error) {
		if err := check(ti); err != nil {
			return nil, err
		}
		return newMapper(ti)
	}
	j.NewReducer = func(ti TaskInfo) (Reducer, error) {
		if err := check(ti); err != nil {
			return nil, err
		}
		return countReducer(), nil
	}
	got, _ := run(t, j, inputs("/in/1", "x y\n", "/in/2", "y\n"), 2)
	if got["part-r-00000"]+got["part-r-00001"] == "" {
		t.Errorf("no output: %v", got)
	}
	if len(dirs) != 4 {
		t.Fatalf("work dirs %v", dirs)
	}
	seen := make(map[string]bool)
	for _, d := range dirs {
		if d == "" || seen[d] {
			t.Errorf("work dirs %v: want a new one for each task", dirs)
		}
		seen[d] = true
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("work dir %s not removed: %v", d, err)
		}
	}

	// No files, no WorkDir.
	j = wordJob()
	j.NewMapper = func(ti TaskInfo) (Mapper, error) {
		if ti.WorkDir != "" {
			return nil, errors.New("a work dir without files")
		}
		return wordJob().NewMapper(ti)
	}
	run(t, j, inputs("/in", "x\n"), 1)

	// Files that cannot be shipped: the task fails, leaving no WorkDir.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	for _, tc := range []struct {
		files []string
		want  string
	}{
		{[]string{a, filepath.Join(t.TempDir(), "a.sh")}, "both are named a.sh"},
		{[]string{filepath.Join(src, "missing")}, "ship file " + filepath.Join(src, "missing") + ": open "},
		{[]string{src + "/sub"}, "ship file " + src + "/sub: not a regular file (d---------)"},
		{[]string{"/"}, `ship file "/": not a file name`},
	} {
		j := wordJob()
		j.Files = tc.files
		_, err := RunSequential(context.Background(), j, "j", nil, inputs("/in", "x\n"), 1, newMemFS().create)
		if err == nil || !strings.HasPrefix(err.Error(), "map task m-000000 (input /in): ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("files %v: got %v, want %q", tc.files, err, tc.want)
		}
		if ents, err := os.ReadDir(tmp); err != nil || len(ents) != 0 {
			t.Errorf("files %v: left %v (%v)", tc.files, ents, err)
		}
	}
}

// userTask is a Mapper and Reducer that is an Aborter and a CounterSource.
// Map fails on "fail" and blocks on "block" until aborted.
type userTask struct {
	mu       sync.Mutex
	aborts   int
	abortc   chan struct{}
	blocking chan struct{} // closed when Map blocks
	n        int64
}

func newUserTask() *userTask {
	return &userTask{abortc: make(chan struct{}), blocking: make(chan struct{})}
}

func (u *userTask) Map(_, v []byte, out Emitter) error {
	switch string(v) {
	case "fail":
		return errors.New("failed")
	case "block":
		close(u.blocking)
		<-u.abortc
		return errors.New("aborted")
	}
	u.n++
	return out.Emit(v, nil)
}

func (u *userTask) Reduce(k []byte, _ Values, out Emitter) error {
	u.n++
	return out.Emit(k, nil)
}

func (u *userTask) Abort() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.aborts++; u.aborts == 1 {
		close(u.abortc)
	}
}

func (u *userTask) Counters() Counters { return Counters{"user:records": u.n} }

func (u *userTask) abortCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.aborts
}

func TestRunSequentialAborterAndCounters(t *testing.T) {
	var tasks []*userTask
	j := &Job{
		NewMapper:  func(TaskInfo) (Mapper, error) { u := newUserTask(); tasks = append(tasks, u); return u, nil },
		NewReducer: func(TaskInfo) (Reducer, error) { u := newUserTask(); tasks = append(tasks, u); return u, nil },
	}
	// Success: counters added, no Abort.
	_, c := run(t, j, inputs("/a", "x\ny\n", "/b", "z\n"), 2)
	if got := c.Get("user:records"); got != 6 {
		t.Errorf("user:records = %d, want 6 (%v)", got, c)
	}
	for i, u := range tasks {
		if u.abortCount() != 0 {
			t.Errorf("task %d aborted", i)
		}
	}

	// A failed task is aborted, once; its counters still count.
	tasks = nil
	c, err := RunSequential(context.Background(), j, "j", nil, inputs("/a", "x\nfail\ny\n"), 1, newMemFS().create)
	if err == nil || err.Error() != "map task m-000000 (input /a): failed" {
		t.Errorf("got %v", err)
	}
	if len(tasks) != 1 || tasks[0].abortCount() != 1 || c.Get("user:records") != 1 {
		t.Errorf("%d tasks, counters %v", len(tasks), c)
	}

	// A task blocked when the context is cancelled is aborted, and the
	// run's error matches the context's.
	u := newUserTask()
	j.NewMapper = func(TaskInfo) (Mapper, error) { return u, nil }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := RunSequential(ctx, j, "j", nil, inputs("/a", "x\nblock\n"), 1, newMemFS().create)
		done <- err
	}()
	<-u.blocking
	cancel()
	err = <-done
	if !errors.Is(err, context.Canceled) || err.Error() != "map task m-000000 (input /a): context canceled: aborted" {
		t.Errorf("got %v", err)
	}
	if n := u.abortCount(); n != 1 {
		t.Errorf("aborted %d times, want 1", n)
	}
}

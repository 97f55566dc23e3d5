package streaming

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// startGroup starts `sleep 600` in a process group of its own, with env.
func startGroup(t *testing.T, env []string) *exec.Cmd {
	cmd := exec.Command("sleep", "600")
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// TestSweepStale: the sweep at agent start kills what a crashed run of the
// same data dir left (found by the recorded group or by the marker), and
// leaves alone a listed group whose processes are not marked (its ID
// reused) and the children of another data dir.
func TestSweepStale(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	file := filepath.Join(t.TempDir(), "tasks.pgid")
	stale := startGroup(t, []string{markerVar + "=dirA"})
	unlisted := startGroup(t, []string{markerVar + "=dirA"})
	reused := startGroup(t, []string{"X=1"})
	other := startGroup(t, []string{markerVar + "=dirB"})
	tr := NewPGIDFile(file)
	tr.Started(stale.Process.Pid)
	tr.Started(reused.Process.Pid)

	killed := SweepStale(file, "dirA")
	slices.Sort(killed)
	want := []int{stale.Process.Pid, unlisted.Process.Pid}
	slices.Sort(want)
	if !slices.Equal(killed, want) {
		t.Fatalf("killed %v, want %v", killed, want)
	}
	for _, c := range []*exec.Cmd{stale, unlisted} {
		if err := c.Wait(); err == nil {
			t.Fatalf("%d exited normally", c.Process.Pid)
		}
	}
	for _, c := range []*exec.Cmd{reused, other} {
		if err := syscall.Kill(c.Process.Pid, 0); err != nil {
			t.Fatalf("%d was killed: %v", c.Process.Pid, err)
		}
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the pgid file is still there: %v", err)
	}
}

// TestTrackerAndMarker: every child is recorded while it runs, carries
// the marker, and is forgotten after it ends.
func TestTrackerAndMarker(t *testing.T) {
	h := newHarness(t)
	file := filepath.Join(t.TempDir(), "tasks.pgid")
	h.cfg.Tracker, h.cfg.Marker = NewPGIDFile(file), "m1"
	out, _, err := h.run(map[string]string{
		"mapper":  `cat >/dev/null; echo "$SHOAL_TASK_OWNER"; cat ` + file,
		"reducer": "NONE",
	}, inputs("in", "x\n"), 1)
	if err != nil {
		t.Fatal(err)
	}
	var pgids []string
	for _, g := range h.started() {
		pgids = append(pgids, strconv.Itoa(g))
	}
	if want := "m1\n" + strings.Join(pgids, "\n") + "\n"; out["part-m-00000"] != want {
		t.Fatalf("the child saw %q, want its marker and its own group %q", out["part-m-00000"], want)
	}
	if b, _ := os.ReadFile(file); len(b) != 0 {
		t.Fatalf("tracker file after the task: %q", b)
	}
}

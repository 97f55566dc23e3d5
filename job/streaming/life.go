package streaming

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// How children die with their agent.
//
// Each child is started as
//
//	SHELL -c lifelineScript shoal-task SHELL COMMAND
//
// with the read end of a "lifeline" pipe as its descriptor 3, the write end
// held by the agent alone. The script forks a watchdog into the child's
// process group that blocks reading the lifeline, then execs
// SHELL -c COMMAND in place (same PID, so the child still leads its group).
// When the agent dies, however it dies, the kernel closes the write end;
// the watchdog reads end-of-file and kills the whole group, grandchildren
// included. The child also gets SIGKILL as its parent-death signal (Linux),
// and the agent records each group in a file (PGIDFile) so that the next
// run on the same data dir can sweep what survived (SweepStale).
const lifelineScript = `{ read x <&3; kill -9 0; } </dev/null >/dev/null 2>&1 &
exec 3<&-
exec "$1" -c "$2"`

// ProcTracker learns of every child's process group as it starts and after
// it is killed, so that an agent can find the groups a crashed run of it
// left behind. Its methods are called concurrently and must not block for
// long.
type ProcTracker interface {
	Started(pgid int)
	Ended(pgid int)
}

// PGIDFile is a ProcTracker that keeps the live process groups in a file,
// one a line, rewritten at every change.
type PGIDFile struct {
	path string
	mu   sync.Mutex
	live []int
}

// NewPGIDFile returns a tracker writing path. It does not touch the file
// until a child starts; SweepStale reads what a previous run left there.
func NewPGIDFile(path string) *PGIDFile { return &PGIDFile{path: path} }

// Started records pgid.
func (f *PGIDFile) Started(pgid int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live = append(f.live, pgid)
	f.write()
}

// Ended forgets pgid.
func (f *PGIDFile) Ended(pgid int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i := slices.Index(f.live, pgid); i >= 0 {
		f.live = slices.Delete(f.live, i, i+1)
	}
	f.write()
}

// write rewrites the file; a failure only weakens the next sweep, which
// also finds children by their marker.
func (f *PGIDFile) write() {
	var b bytes.Buffer
	for _, g := range f.live {
		fmt.Fprintln(&b, g)
	}
	tmp := f.path + ".tmp"
	if os.WriteFile(tmp, b.Bytes(), 0o600) == nil {
		_ = os.Rename(tmp, f.path)
	}
}

// markerVar is the environment variable that marks a child as started by
// the agent of one data dir (Config.Marker).
const markerVar = "SHOAL_TASK_OWNER"

// SweepStale kills what a previous run of an agent left running: every
// process group listed in pgidFile that still holds a process carrying
// marker in its environment (a group ID reused by someone else's process
// is left alone), and every process carrying marker. It then empties the
// file, and returns the process IDs it killed. Call it at agent start,
// before any task runs.
func SweepStale(pgidFile, marker string) []int {
	listed := map[int]bool{}
	if b, err := os.ReadFile(pgidFile); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if g, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil && g > 1 {
				listed[g] = true
			}
		}
	}
	killed := sweep(listed, markerVar+"="+marker)
	_ = os.Remove(pgidFile)
	return killed
}

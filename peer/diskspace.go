package peer

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"shoal.dev/shoal/disk"
)

// diskState is what the node last measured of the file systems it writes.
type diskState struct {
	Free    int64  // free bytes on the most constrained of them
	Total   int64  // its size
	Reserve int64  // the reserve there, in bytes
	Path    string // that directory
	// Low: the node takes no new blocks or tasks. True while some
	// directory has less than its reserve free, or less than a write it
	// refused (or that met ENOSPC) needed, until that much is free again.
	Low bool
	// Reason says why, in one line, when Low.
	Reason string
}

// diskWatch keeps the refusals the node's guard saw, so that a node that
// refused a write stays low until that write would fit.
type diskWatch struct {
	mu   sync.Mutex
	need map[string]diskNeed // checked dir -> what a refused write needed there
}

// diskNeed is the free space a refused write needed in a dir, and whether
// it met ENOSPC (rather than the reserve).
type diskNeed struct {
	free   int64
	enospc bool
}

// diskDirs are the directories whose file systems the node writes: the
// data dir and the block, shuffle and task work dirs under it (any of which
// may be a mount of its own).
func (n *Node) diskDirs() []string {
	d := n.cfg.DataDir
	return []string{d, filepath.Join(d, "blocks"), filepath.Join(d, "shuffle"), filepath.Join(d, "work")}
}

// dirOf maps a path the guard refused to the checked dir holding it (the
// longest one that is a prefix).
func (n *Node) dirOf(path string) string {
	best := n.cfg.DataDir
	for _, d := range n.diskDirs() {
		if (path == d || strings.HasPrefix(path, d+string(filepath.Separator))) && len(d) > len(best) {
			best = d
		}
	}
	return best
}

// onDiskFull is the guard's OnFull: it remembers how much free space the
// refused write needed, and asks for a health check now, so the node tells
// the cluster it is low before the next block or task comes its way.
func (n *Node) onDiskFull(e *disk.FullError) {
	need := e.Reserve + e.Need
	if e.ENOSPC {
		need = max(e.Free, 0) + e.Reserve + 1<<20
	}
	dir := n.dirOf(e.Path)
	n.diskWatch.mu.Lock()
	if old := n.diskWatch.need[dir]; need > old.free {
		n.diskWatch.need[dir] = diskNeed{free: need, enospc: e.ENOSPC}
	}
	n.diskWatch.mu.Unlock()
	select {
	case n.healthKick <- struct{}{}:
	default:
	}
}

// measureDisk statfs's every checked dir and decides whether the node is
// low on disk. A dir that cannot be measured (missing) is skipped.
func (n *Node) measureDisk() diskState {
	var st diskState
	var headroom int64
	first := true
	n.diskWatch.mu.Lock()
	defer n.diskWatch.mu.Unlock()
	for _, d := range n.diskDirs() {
		u, reserve, err := n.space.Usage(d)
		if err != nil {
			continue
		}
		need := reserve
		w, refused := n.diskWatch.need[d]
		if refused {
			if u.Free >= w.free {
				delete(n.diskWatch.need, d) // the refused write would fit now
				refused = false
			} else {
				need = max(need, w.free)
			}
		}
		if h := u.Free - need; first || h < headroom {
			first, headroom = false, h
			st = diskState{Free: u.Free, Total: u.Total, Reserve: reserve, Path: d}
			switch {
			case h >= 0:
			case refused && w.enospc:
				st.Low, st.Reason = true, fmt.Sprintf("low on disk: %s free at %s, where a write ran out of space; taking no new blocks or tasks until %s are free", disk.Size(u.Free), d, disk.Size(need))
			case refused:
				st.Low, st.Reason = true, fmt.Sprintf("low on disk: %s free at %s, where a write was refused; taking no new blocks or tasks until %s are free (the --reserve of %s and the write)", disk.Size(u.Free), d, disk.Size(need), disk.Size(reserve))
			default:
				st.Low, st.Reason = true, fmt.Sprintf("low on disk: %s free at %s, below the --reserve of %s; taking no new blocks or tasks", disk.Size(u.Free), d, disk.Size(reserve))
			}
		}
	}
	return st
}

// lowOnDisk reports whether node says it is low on disk (this node: as it
// last measured).
func (n *Node) lowOnDisk(node string) bool {
	if node == n.cfg.Name {
		if st := n.disk.Load(); st != nil {
			return st.Low
		}
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.byName[node].DiskLow
}

// metaDiskChanged reports whether the gossiped disk figures are stale
// enough to gossip anew: the low verdict flipped, or free space moved by
// more than a tenth (and 64 MiB) since it was last gossiped.
func metaDiskChanged(old nodeMeta, st diskState) bool {
	if old.DiskLow != st.Low || old.DiskReserve != st.Reserve {
		return true
	}
	d := st.Free - old.DiskFree
	if d < 0 {
		d = -d
	}
	return d > 64<<20 && d > old.DiskFree/10
}

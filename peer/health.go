package peer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// DefaultHealthInterval is how often a node checks its data dir.
const DefaultHealthInterval = 2 * time.Second

// checkDataDir reports why the node's data dir is unusable, or nil: its
// metadata database is gone (the dir was deleted under the node), or a
// file cannot be created, written and synced in it (a full disk, a
// read-only mount, lost permissions).
func (n *Node) checkDataDir() error {
	dir := n.cfg.DataDir
	if _, err := os.Stat(filepath.Join(dir, "meta.db")); err != nil {
		return fmt.Errorf("data dir %s: meta.db is %s (was the data dir deleted?)", dir, describeFSError(err))
	}
	f, err := os.CreateTemp(dir, ".health-*")
	if err != nil {
		return fmt.Errorf("data dir %s: cannot create a file: %s", dir, describeFSError(err))
	}
	defer os.Remove(f.Name())
	_, err = f.Write([]byte("ok\n"))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("data dir %s: cannot write a file: %s", dir, describeFSError(err))
	}
	return nil
}

// describeFSError says in a few words what a file system error means.
func describeFSError(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "missing"
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "out of space (disk full)"
	case errors.Is(err, syscall.EROFS):
		return "on a read-only file system"
	case errors.Is(err, fs.ErrPermission):
		return "not writable (permission denied)"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// healthReason is why the node is unhealthy; "" when it is healthy.
func (n *Node) healthReason() string {
	if p := n.unhealthy.Load(); p != nil {
		return *p
	}
	return ""
}

// checkHealth checks the data dir now and, when the verdict changes,
// records it, tells the cluster through the node's gossip meta (so no
// scheduler gives this node tasks while it is unhealthy) and wakes the
// scheduler. It returns the reason, "" when healthy.
func (n *Node) checkHealth() string {
	reason := ""
	if err := n.checkDataDir(); err != nil {
		reason = truncateReason(err.Error())
	}
	ds := n.measureDisk()
	n.healthMu.Lock()
	defer n.healthMu.Unlock()
	old := n.disk.Swap(&ds)
	if old == nil || old.Low != ds.Low {
		switch {
		case ds.Low:
			n.log.Error("node low on disk; taking no new blocks or tasks", "reason", ds.Reason, "free", ds.Free, "reserve", ds.Reserve, "path", ds.Path)
		case old != nil:
			n.log.Info("node has room on disk again", "free", ds.Free, "reserve", ds.Reserve, "path", ds.Path)
		}
	}
	diskChanged := metaDiskChanged(n.meta, ds)
	if reason == n.healthReason() && !diskChanged {
		return reason
	}
	if diskChanged {
		n.meta.DiskFree, n.meta.DiskReserve, n.meta.DiskLow = ds.Free, ds.Reserve, ds.Low
	}
	if reason != n.healthReason() {
		if reason != "" {
			n.log.Error("node unhealthy; taking no tasks", "reason", reason)
		} else {
			n.log.Info("node healthy again")
		}
	}
	n.unhealthy.Store(&reason)
	n.meta.Unhealthy = reason
	if b, err := msgpack.Marshal(n.meta); err != nil {
		n.log.Error("encode node meta", "err", err)
	} else if err := n.gossip.SetMeta(b); err != nil {
		n.log.Warn("gossip health", "err", err)
	}
	if n.sched != nil {
		n.sched.Kick()
	}
	return reason
}

// truncateReason keeps a reason within what the node meta can carry.
func truncateReason(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	return s[:max-3] + "..."
}

// watchHealth checks the data dir every HealthInterval until ctx ends.
func (n *Node) watchHealth(ctx context.Context) {
	t := time.NewTicker(n.cfg.HealthInterval)
	defer t.Stop()
	for {
		n.checkHealth()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.healthKick:
		}
	}
}

// usable reports whether node may take tasks: it is healthy, not being
// drained and not low on disk, as it says in its gossip meta (this node:
// as it last checked).
func (n *Node) usable(node string) bool {
	if node == n.cfg.Name {
		return n.healthReason() == "" && !n.draining() && !n.lowOnDisk(node)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.byName[node]
	return m.Unhealthy == "" && !m.Draining && !m.DiskLow
}

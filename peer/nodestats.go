package peer

import (
	"context"
	"sync"
	"syscall"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/mesh"
)

// nodeStatsProtocol answers a member's own figures for the console's
// cluster page: an empty request, one msgpack NodeStats answer.
const nodeStatsProtocol = "/shoal/nodestats/1"

// NodeStats are one member's figures, counted as things change (no walk).
type NodeStats struct {
	Started         time.Time `msgpack:"st" json:"started"`
	Blocks          int64     `msgpack:"b" json:"blocks"`
	BlockBytes      int64     `msgpack:"bb" json:"block_bytes"`
	DiskFree        int64     `msgpack:"df" json:"disk_free"`
	DiskSize        int64     `msgpack:"ds" json:"disk_size"`
	UnderReplicated int64     `msgpack:"u" json:"under_replicated"`
	Missing         int64     `msgpack:"m" json:"missing"`
	RunningTasks    int       `msgpack:"rt" json:"running_tasks"`
}

func (n *Node) nodeStats() NodeStats {
	held, bytes := n.blocks.Held()
	st := NodeStats{
		Started: n.started, Blocks: held, BlockBytes: bytes,
		UnderReplicated: n.repairer.Stats.UnderReplicated.Load(),
		Missing:         n.repairer.Stats.Missing.Load(),
		RunningTasks:    n.sched.RunningTasks(),
	}
	var fs syscall.Statfs_t
	if syscall.Statfs(n.cfg.DataDir, &fs) == nil {
		st.DiskFree, st.DiskSize = int64(fs.Bavail)*int64(fs.Bsize), int64(fs.Blocks)*int64(fs.Bsize)
	}
	return st
}

func (n *Node) serveNodeStats(from mesh.NodeName, s mesh.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	mesh.WriteMsg(s, n.nodeStats())
}

// memberStats asks every alive member for its figures, in parallel, for
// at most 2 seconds; members that do not answer are left out.
func (n *Node) memberStats(ctx context.Context) map[string]NodeStats {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out := map[string]NodeStats{n.cfg.Name: n.nodeStats()}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range n.Ring().Members() {
		if m == n.cfg.Name {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := n.Dial(ctx, m, nodeStatsProtocol)
			if err != nil {
				return
			}
			defer s.Close()
			d, _ := ctx.Deadline()
			s.SetDeadline(d)
			var st NodeStats
			if mesh.ReadMsg(s, &st, 4<<10) == nil {
				mu.Lock()
				out[m] = st
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// blockHolders asks every alive member which of the blocks it holds.
func (n *Node) blockHolders(ctx context.Context, blocks []blockstore.BlockRef) map[blockstore.ID][]string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ids := make([]blockstore.ID, len(blocks))
	for i, b := range blocks {
		ids[i] = b.ID
	}
	cl := blockstore.NewClient(mesh.DialerFunc(n.Dial))
	out := map[blockstore.ID][]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range n.Ring().Members() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var have []bool
			if m == n.cfg.Name {
				for _, id := range ids {
					have = append(have, n.blocks.Has(id))
				}
			} else {
				var err error
				if have, err = cl.HaveMany(ctx, m, ids); err != nil {
					return
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for i, h := range have {
				if h && i < len(ids) {
					out[ids[i]] = append(out[ids[i]], m)
				}
			}
		}()
	}
	wg.Wait()
	return out
}

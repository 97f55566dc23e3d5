package peer

import (
	"errors"
	"fmt"
	"net/http"
	"shoal.dev/shoal/client"
	"slices"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"shoal.dev/shoal/blockstore"
)

// Draining a node hands its blocks to the other members before it leaves.
// The node says it is draining in its gossip meta; every member then
// leaves it out of the ring, so it owns nothing: the new owners of its
// blocks fetch them (reads still reach it, as a Source), it takes no new
// blocks and no tasks, and its repair loop drops each copy only once every
// new owner holds it — the repair loop's rule for copies a node no longer
// owns. So every block keeps its R copies throughout. When a repair pass
// that began after the drain started reads every manifest and finds no
// copy left to hand over, the drain is done and the node leaves the
// cluster.

// ErrDrain is wrapped by StartDrain's refusals.
var ErrDrain = errors.New("cannot drain")

// DrainInfo is the body of POST and GET /v1/drain.
type DrainInfo = client.DrainInfo

// drainLinger bounds how long a drained node waits for its status to be
// read (so that the client sees "done") before it leaves.
const drainLinger = 10 * time.Second

// drainRetry is the delay between repair passes while copies remain.
const drainRetry = time.Second

// drainState is the node's drain, if any. Its fields are guarded by mu.
type drainState struct {
	mu sync.Mutex
	on bool // draining: out of this node's own ring
	// since is when this node's ring first left it out: only repair passes
	// that began later decide (an earlier one may have read the old ring,
	// in which the node still owns its blocks).
	since    time.Time
	left     int
	done     bool
	reported chan struct{} // closed once a status with Done was served
	leave    chan struct{} // closed when the node should leave
	retry    *time.Timer
}

// Drained is closed when the node has handed over its blocks and should
// leave the cluster (the agent then shuts down gracefully).
func (n *Node) Drained() <-chan struct{} { return n.drain.leave }

// draining reports whether this node is being drained.
func (n *Node) draining() bool {
	n.drain.mu.Lock()
	defer n.drain.mu.Unlock()
	return n.drain.on
}

// StartDrain starts draining this node; calling it again while a drain is
// under way only reports. Unless force, it refuses when a file asks for
// more copies than the members that would remain, which would leave it
// below its replication. It also refuses on the last member and while the
// node's metadata is being recovered.
func (n *Node) StartDrain(force bool) (DrainInfo, error) {
	if n.draining() {
		return n.DrainStatus(), nil
	}
	if n.recovering.Load() {
		return DrainInfo{}, fmt.Errorf("%w %s: its metadata is being recovered", ErrDrain, n.cfg.Name)
	}
	var remaining []string
	for _, m := range n.Ring().Members() {
		if m != n.cfg.Name {
			remaining = append(remaining, m)
		}
	}
	if len(remaining) == 0 {
		return DrainInfo{}, fmt.Errorf("%w %s: it is the only member, so its blocks have nowhere to go", ErrDrain, n.cfg.Name)
	}
	if !force {
		for _, f := range n.fs.Files() {
			if f.Replication > len(remaining) {
				return DrainInfo{}, fmt.Errorf("%w %s: %s asks for %d copies and %d members would remain; add a member first, or drain with --force to leave it with %d",
					ErrDrain, n.cfg.Name, f.Path, f.Replication, len(remaining), len(remaining))
			}
		}
	}
	n.drain.mu.Lock()
	n.drain.on = true
	n.drain.left = -1
	n.drain.mu.Unlock()
	n.log.Info("drain: handing this node's blocks to the other members; it leaves when they hold them", "remaining", remaining)

	n.healthMu.Lock()
	n.meta.Draining = true
	b, err := msgpack.Marshal(n.meta)
	if err == nil {
		err = n.gossip.SetMeta(b)
	}
	n.healthMu.Unlock()
	if err != nil {
		n.log.Warn("drain: gossip the draining state", "err", err)
	}
	n.onMembersChanged() // leaves this node out of its own ring
	n.drain.mu.Lock()
	n.drain.since = time.Now()
	n.drain.mu.Unlock()
	n.repairer.Kick()
	return n.DrainStatus(), nil
}

// DrainStatus reports the drain. A status with Done, once served, lets the
// node leave (see drainLinger).
func (n *Node) DrainStatus() DrainInfo {
	n.drain.mu.Lock()
	defer n.drain.mu.Unlock()
	return DrainInfo{Node: n.cfg.Name, Draining: n.drain.on, BlocksLeft: n.drain.left, Done: n.drain.done}
}

// onRepairPass follows the drain from the repair loop's passes.
func (n *Node) onRepairPass(res blockstore.PassResult) {
	d := &n.drain
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.on || d.since.IsZero() || d.done || !res.Started.After(d.since) {
		return
	}
	if res.Complete && res.Unowned >= 0 {
		d.left = res.Unowned
	}
	if !drainDone(res) {
		if d.retry == nil {
			d.retry = time.AfterFunc(drainRetry, n.repairer.Kick)
		} else {
			d.retry.Reset(drainRetry)
		}
		return
	}
	d.done = true
	n.log.Info("drain: every block this node held is on other members; leaving the cluster")
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		t := time.NewTimer(drainLinger)
		defer t.Stop()
		select {
		case <-d.reported:
		case <-t.C:
		case <-n.stop:
		}
		close(d.leave)
	}()
}

// drainDone decides, from a repair pass that began after the drain
// started, whether the node may leave: the pass knew every block the
// files need and found none held here that the new owners lack.
func drainDone(res blockstore.PassResult) bool {
	return res.Complete && res.Unowned == 0
}

// drainSources lists the alive members being drained, which are out of
// the ring but still serve their blocks.
func (n *Node) drainSources() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for name, m := range n.byName {
		if m.Draining {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func (n *Node) handleDrainStart(w http.ResponseWriter, r *http.Request) {
	info, err := n.StartDrain(r.URL.Query().Get("force") == "1")
	if err != nil {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	n.writeDrain(w, info)
}

func (n *Node) handleDrainStatus(w http.ResponseWriter, r *http.Request) {
	n.writeDrain(w, n.DrainStatus())
}

func (n *Node) writeDrain(w http.ResponseWriter, info DrainInfo) {
	writeJSON(w, http.StatusOK, info)
	if info.Done {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		n.drain.mu.Lock()
		select {
		case <-n.drain.reported:
		default:
			close(n.drain.reported)
		}
		n.drain.mu.Unlock()
	}
}

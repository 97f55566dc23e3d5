package gossip

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// SyncStream is a reliable byte stream to another member's anti-entropy
// handler (Shoal's is a libp2p stream).
type SyncStream interface {
	io.ReadWriteCloser
	// SetDeadline bounds every pending and future Read and Write.
	SetDeadline(t time.Time) error
}

// SyncDialFunc opens a SyncStream to the named member, whose end of it must
// be handed to that member's Node.ServeSync. It is called from the Node's
// anti-entropy goroutine, one call at a time, and may block until ctx ends.
type SyncDialFunc func(ctx context.Context, member string) (SyncStream, error)

// syncRoundTimeout bounds one anti-entropy round on the stream.
const syncRoundTimeout = 2 * time.Minute

// SyncStats counts the anti-entropy rounds since the Node started.
type SyncStats struct {
	// Rounds counts completed rounds, initiated or served.
	Rounds int64
	// Failed counts rounds that failed (the peer died, broke the protocol).
	Failed int64
	// Bytes counts the bytes this node sent and received in rounds.
	Bytes int64
	// Refused counts records of stale peers refused by the tombstone rule.
	Refused int64
	// Purged counts own records dropped by the tombstone rule.
	Purged int64
}

// syncer is the Node's anti-entropy state.
type syncer struct {
	rounds, failed, bytes, refused, purged atomic.Int64

	mu      sync.Mutex
	settled bool            // Join succeeded, or Settle was called
	synced  map[string]bool // members a round completed with since start
	anyone  bool            // a round with some other member completed
	ready   chan struct{}   // closed once Synced first holds
	isDone  bool

	kick chan struct{}
}

// SyncStats returns the anti-entropy counters.
func (n *Node) SyncStats() SyncStats {
	s := &n.sync
	return SyncStats{Rounds: s.rounds.Load(), Failed: s.failed.Load(), Bytes: s.bytes.Load(),
		Refused: s.refused.Load(), Purged: s.purged.Load()}
}

// Synced reports whether the node has joined (or Settle was called) and,
// since it started, an anti-entropy round has completed with every member
// now alive (and, when Config.MetadataReset
// is set, with at least one other member). A node alone is in sync unless
// its metadata was reset. Until Synced holds, the node's record set may lack
// records every other member has: nothing may be decided (blocks deleted,
// jobs judged) on the absence of a record.
func (n *Node) Synced() bool {
	peers := n.view.alivePeers(n.cfg.Name)
	s := &n.sync
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.settled || n.cfg.MetadataReset && !s.anyone {
		return false
	}
	for _, p := range peers {
		if !s.synced[p.Name] {
			return false
		}
	}
	if !s.isDone {
		s.isDone = true
		close(s.ready)
	}
	return true
}

// Settle tells the Node that it starts a cluster alone (it will not call
// Join): with no other member alive it is then in sync. A Node is settled
// by a successful Join too; before either, Synced is false.
func (n *Node) Settle() {
	n.sync.mu.Lock()
	n.sync.settled = true
	n.sync.mu.Unlock()
	n.KickSync()
}

// SyncedChan returns a channel closed once Synced has first held.
func (n *Node) SyncedChan() <-chan struct{} {
	n.Synced()
	return n.sync.ready
}

// StaleAtStart reports whether the node started with records but a last
// sync (Store.SyncedAt) older than the tombstone TTL, or none: it may hold
// records that were deleted, and their tombstones collected, while it was
// away. Its anti-entropy rounds apply the tombstone rule until it is in
// sync.
func (n *Node) StaleAtStart() bool { return n.staleAtStart }

// horizon is this node's anti-entropy horizon: now when in sync, else the
// last time it was.
func (n *Node) horizon() time.Time {
	if n.Synced() {
		return n.cfg.Now()
	}
	return n.store.SyncedAt()
}

// noteSynced records a completed round with member and, when the node is
// then in sync with everyone, persists the time now and then.
func (n *Node) noteSynced(member string, res SyncResult) {
	s := &n.sync
	s.rounds.Add(1)
	s.refused.Add(int64(res.Refused))
	s.purged.Add(int64(res.Purged))
	s.mu.Lock()
	s.synced[member] = true
	s.anyone = true
	s.mu.Unlock()
	if res.Refused > 0 || res.Purged > 0 {
		n.log.Info("gossip: tombstone rule applied in anti-entropy", "peer", member,
			"refused", res.Refused, "purged", res.Purged)
	}
	n.persistSynced()
}

// persistSynced records the time in the store when the node is in sync,
// at most every syncPersistEvery.
func (n *Node) persistSynced() {
	if !n.Synced() {
		return
	}
	now := n.cfg.Now()
	every := min(n.cfg.TombstoneTTL/16, time.Minute)
	if now.Sub(n.store.SyncedAt()) < every {
		return
	}
	if err := n.store.SetSyncedAt(now); err != nil && !errors.Is(err, ErrClosed) {
		n.log.Warn("gossip: cannot record the sync time", "err", err)
	}
}

// ServeSync answers one anti-entropy round that member started on s, and
// closes s. It returns the round's error (also counted in SyncStats).
func (n *Node) ServeSync(member string, s SyncStream) error {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(syncRoundTimeout))
	res, err := n.store.SyncServe(s, n.horizon())
	n.sync.bytes.Add(res.BytesSent + res.BytesReceived)
	if err != nil {
		n.sync.failed.Add(1)
		n.log.Debug("gossip: anti-entropy round served with an error", "peer", member, "err", err)
		return err
	}
	n.noteSynced(member, res)
	return nil
}

// SyncWith runs one anti-entropy round with member, now.
func (n *Node) SyncWith(ctx context.Context, member string) (SyncResult, error) {
	if n.cfg.SyncDial == nil {
		return SyncResult{}, errors.New("anti-entropy is not configured")
	}
	ctx, cancel := context.WithTimeout(ctx, syncRoundTimeout)
	defer cancel()
	s, err := n.cfg.SyncDial(ctx, member)
	if err != nil {
		n.sync.failed.Add(1)
		return SyncResult{}, err
	}
	defer s.Close()
	d, _ := ctx.Deadline()
	_ = s.SetDeadline(d)
	stop := context.AfterFunc(ctx, func() { _ = s.SetDeadline(time.Now()) })
	defer stop()
	res, err := n.store.SyncInitiate(s, n.horizon())
	n.sync.bytes.Add(res.BytesSent + res.BytesReceived)
	if err != nil {
		n.sync.failed.Add(1)
		return res, err
	}
	n.noteSynced(member, res)
	return res, nil
}

// KickSync asks the anti-entropy loop for a pass soon. It never blocks.
func (n *Node) KickSync() {
	select {
	case n.sync.kick <- struct{}{}:
	default:
	}
}

// runSync is the Node's anti-entropy goroutine: on start, on every
// membership change and every SyncInterval it runs a round with each alive
// member it has not completed one with since start; on every interval it
// also runs one with a random alive member. It ends when Shutdown closes
// quit.
func (n *Node) runSync(events <-chan MemberEvent) {
	defer n.wg.Done()
	ctx := n.ctx
	t := time.NewTicker(n.cfg.SyncInterval)
	defer t.Stop()
	periodic := false
	for {
		peers := n.view.alivePeers(n.cfg.Name)
		n.sync.mu.Lock()
		var todo []string
		for _, p := range peers {
			if !n.sync.synced[p.Name] {
				todo = append(todo, p.Name)
			}
		}
		n.sync.mu.Unlock()
		if periodic && len(todo) == 0 && len(peers) > 0 {
			n.randMu.Lock()
			todo = append(todo, peers[n.rand.IntN(len(peers))].Name)
			n.randMu.Unlock()
		}
		for _, p := range todo {
			if ctx.Err() != nil {
				return
			}
			if _, err := n.SyncWith(ctx, p); err != nil && ctx.Err() == nil {
				n.log.Debug("gossip: anti-entropy round failed; will retry", "peer", p, "err", err)
			}
		}
		n.Synced() // closes the ready channel when it first holds
		n.persistSynced()
		periodic = false
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Type == EventJoin {
				// A member that comes back (a restart, a healed
				// partition) may hold writes we lack: sync with it again.
				n.sync.mu.Lock()
				delete(n.sync.synced, ev.Member.Name)
				n.sync.mu.Unlock()
			}
		case <-n.sync.kick:
		case <-t.C:
			periodic = true
		}
	}
}

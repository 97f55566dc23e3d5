package blockstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// RepairConfig shapes the repair loop.
type RepairConfig struct {
	// Interval between periodic passes. Default 10s.
	Interval time.Duration
	// GCGrace is how old an unreferenced block must be before it is
	// collected, and how long after start collection waits: a put in
	// progress holds blocks no file references yet. Default 10m.
	GCGrace time.Duration
	// Parallel is how many blocks one pass fetches at once. Default 4.
	Parallel int
	// Referenced lists blocks that live outside any file (a running job's
	// spec block, see package scheduler), kept and repaired like file
	// blocks. It is called once per pass, from the repair goroutine, and
	// may be nil.
	Referenced func() []BlobRef
	// CanCollect is the safe-mode gate: unreferenced blocks are collected
	// only while it returns true (the node's metadata has been in sync with
	// every alive member since start), so no block is deleted on the
	// evidence of metadata that is incomplete or was reset. It is called
	// once per pass, before the pass reads the file list. Default: always
	// true.
	CanCollect func() bool
	// OnPass, if set, is called at the end of every pass, from the repair
	// goroutine, with what the pass found. It must not block.
	OnPass func(PassResult)
}

// PassResult is what one repair pass found.
type PassResult struct {
	// Started is when the pass began.
	Started time.Time
	// Complete is true when every file's manifest was read, so that the
	// blocks the files need are all known.
	Complete bool
	// Unowned counts the blocks that files need, that this node holds but
	// does not own, and that it kept because their owners did not all
	// confirm holding them: copies still to be handed over.
	Unowned int
}

// BlobRef is a block referenced from outside the file system, with the
// replication it was stored with.
type BlobRef struct {
	ID          ID
	Replication int
}

func (c *RepairConfig) fill() {
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	if c.GCGrace <= 0 {
		c.GCGrace = 10 * time.Minute
	}
	if c.Parallel <= 0 {
		c.Parallel = 4
	}
	if c.CanCollect == nil {
		c.CanCollect = func() bool { return true }
	}
}

// RepairStats counts what the repair loop did since start.
type RepairStats struct {
	Passes    atomic.Int64
	Fetched   atomic.Int64 // blocks this node owned but lacked, fetched
	Dropped   atomic.Int64 // copies this node no longer owns, removed once every owner had them
	Collected atomic.Int64 // unreferenced blocks removed after the grace period
	Failed    atomic.Int64 // fetches that failed (retried next pass)
	Missing   atomic.Int64 // blocks no alive member could serve, at the last pass
	// ManifestReads counts the manifests passes read; a pass reads only
	// those of files new since the last pass.
	ManifestReads atomic.Int64
	// UnderReplicated: blocks this node owns but lacked at the start of
	// the last pass (copies short of their replication, as this owner
	// sees them).
	UnderReplicated atomic.Int64
}

// Repairer keeps this node's share of the blocks: each pass fetches the
// blocks of live files the node owns but lacks, drops copies it no longer
// owns once every owner holds them, and collects blocks no live file
// references. Passes run periodically and on Kick.
type Repairer struct {
	fs      *FS
	cfg     RepairConfig
	log     *slog.Logger
	started time.Time
	kick    chan struct{}
	Stats   RepairStats

	// known holds the block lists of the manifests the last pass read,
	// by manifest ID (a manifest never changes). A pass reads only the
	// manifests of files new since, so a pass over many small files
	// costs no disk reads for the files it saw before: re-reading every
	// manifest every 10 s was half an agent's CPU at 10,000 files. It is
	// replaced by each pass's, so a removed file's entry goes with it;
	// it holds no more than the pass's needed set already does.
	mu    sync.Mutex
	known map[ID][]BlockRef
}

// NewRepairer returns a repair loop for fs; call Run.
func NewRepairer(fs *FS, cfg RepairConfig) *Repairer {
	cfg.fill()
	return &Repairer{fs: fs, cfg: cfg, log: fs.log, started: time.Now(), kick: make(chan struct{}, 1)}
}

// Kick asks for a pass soon, as after a membership change. It never blocks.
func (r *Repairer) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run runs passes until ctx ends.
func (r *Repairer) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
		}
		if err := r.Pass(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("repair pass incomplete", "err", err)
		}
	}
}

// Pass runs one repair pass.
func (r *Repairer) Pass(ctx context.Context) (err error) {
	defer r.Stats.Passes.Add(1)
	res := PassResult{Started: time.Now()}
	if r.cfg.OnPass != nil {
		defer func() {
			if err != nil && !res.Complete && res.Unowned == 0 {
				res.Unowned = -1 // unknown
			}
			r.cfg.OnPass(res)
		}()
	}
	fs := r.fs
	rg := fs.cfg.Ring()
	if rg.Len() == 0 {
		return nil
	}
	// Asked before the files are read: in sync then means the list below
	// is complete.
	canCollect := r.cfg.CanCollect()
	// needed: every block of every live file, with its replication.
	type need struct {
		size int64
		repl int
		// latest is the newest commit time of the files referencing
		// the block (Unix ns; 0 when only a job references it).
		latest int64
	}
	needed := map[ID]need{}
	complete := true // every manifest was read, so "unreferenced" is known
	var errs []error
	r.mu.Lock()
	known := r.known
	r.mu.Unlock()
	read := make(map[ID][]BlockRef, len(known))
	for _, f := range fs.Files() {
		needed[f.Manifest] = need{size: -1, repl: f.Replication, latest: f.ModTime}
		blocks, ok := read[f.Manifest]
		if !ok {
			blocks, ok = known[f.Manifest]
		}
		if !ok {
			r.Stats.ManifestReads.Add(1)
			m, err := fs.Manifest(ctx, f)
			if err != nil {
				complete = false
				errs = append(errs, err)
				continue
			}
			blocks = m.Blocks
		}
		read[f.Manifest] = blocks
		for _, b := range blocks {
			n := needed[b.ID]
			needed[b.ID] = need{size: b.Size, repl: max(n.repl, f.Replication), latest: max(n.latest, f.ModTime)}
		}
	}
	if r.cfg.Referenced != nil {
		for _, b := range r.cfg.Referenced() {
			if n, ok := needed[b.ID]; !ok || n.repl < b.Replication {
				needed[b.ID] = need{size: -1, repl: b.Replication, latest: n.latest}
			}
		}
	}
	r.mu.Lock()
	r.known = read
	r.mu.Unlock()
	local, err := fs.cfg.Store.IDs()
	if err != nil {
		return fmt.Errorf("list local blocks: %w", err)
	}
	res.Complete = complete
	have := make(map[ID]bool, len(local))
	for _, id := range local {
		have[id] = true
	}

	// Fetch what we own and lack.
	var missing atomic.Int64
	var under int64
	defer func() { r.Stats.UnderReplicated.Store(under) }()
	sem := make(chan struct{}, r.cfg.Parallel)
	var wg sync.WaitGroup
	for id, n := range needed {
		// Fetched by the owners that have room: a node low on disk is
		// skipped and the next member on the ring holds the copy.
		owners := fs.owners(id, min(n.repl, rg.Len()))
		if _, ok := have[id]; ok || !slices.Contains(owners, fs.cfg.Self) {
			continue
		}
		under++
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := r.fetch(ctx, BlockRef{ID: id, Size: n.size}, n.repl); err != nil {
				r.Stats.Failed.Add(1)
				if errors.Is(err, ErrNotFound) {
					missing.Add(1)
				}
				r.log.Warn("repair: fetch failed", "block", id.Short(), "err", err)
				return
			}
			r.Stats.Fetched.Add(1)
		}()
	}
	wg.Wait()
	r.Stats.Missing.Store(missing.Load())

	// Drop copies we no longer own, once every owner has them; collect
	// unreferenced blocks past the grace period.
	fs.cfg.Store.prunePuts(r.cfg.GCGrace)
	byOwner := map[string][]ID{}
	collect := complete && canCollect
	for id := range have {
		n, ok := needed[id]
		if !ok {
			if collect && time.Since(r.started) > r.cfg.GCGrace {
				if t, err := fs.cfg.Store.ModTime(id); err == nil && time.Since(t) > r.cfg.GCGrace {
					if err := fs.cfg.Store.Delete(id); err == nil {
						r.Stats.Collected.Add(1)
					}
				}
			}
			continue
		}
		// Kept while this node is an owner with room, or a plain ring
		// owner; a substitute copy goes only once every plain owner
		// holds the block.
		owners := rg.Owners(id.String(), min(n.repl, rg.Len()))
		if slices.Contains(owners, fs.cfg.Self) || slices.Contains(fs.owners(id, min(n.repl, rg.Len())), fs.cfg.Self) {
			continue
		}
		for _, o := range owners {
			byOwner[o] = append(byOwner[o], id)
		}
	}
	if len(byOwner) == 0 {
		return errors.Join(errs...)
	}
	// From here, every needed block held here that this node does not own
	// is a copy still to hand over, unless it is dropped below.
	confirmed := map[ID]int{}
	for owner, ids := range byOwner {
		got, err := fs.cfg.Client.HaveMany(ctx, owner, ids)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for i, ok := range got {
			if ok {
				confirmed[ids[i]]++
			}
		}
	}
	for id, n := range needed {
		if _, ok := have[id]; !ok {
			continue
		}
		owners := rg.Owners(id.String(), min(n.repl, rg.Len()))
		if slices.Contains(owners, fs.cfg.Self) || slices.Contains(fs.owners(id, min(n.repl, rg.Len())), fs.cfg.Self) {
			continue
		}
		if confirmed[id] < len(owners) {
			res.Unowned++
			continue
		}
		putRepl, putAt := fs.cfg.Store.PutRepl(id, r.cfg.GCGrace)
		if !mayDrop(putRepl, putAt, n.repl, time.Unix(0, n.latest)) {
			continue // every owner holds it: kept for a put, not to hand over
		}
		if err := fs.cfg.Store.Delete(id); err == nil {
			r.Stats.Dropped.Add(1)
		} else {
			res.Unowned++
		}
	}
	return errors.Join(errs...)
}

// mayDrop decides whether a copy this node does not own, once every owner
// holds the block, may be dropped: putRepl is the replication a put that
// wrote the copy here within the grace period asked for (0: none did), at
// putAt; needRepl is the highest the files referencing the block ask for,
// and committed the newest commit time among them. A put that asked for
// more and has not committed yet (the same bytes put again with a higher
// replication: the files say R = 1 while the put has just written three
// copies) keeps its copy; the grace bounds how long a put that never
// commits holds copies. A file committed after the put wrote the copy is
// that put's own (or a later one's), whatever replication it ended with —
// a put's blocks ask for R of the members alive when each is written, its
// commit for R of those alive when it commits, fewer when members died
// meanwhile — so the copy is then judged by the files alone.
func mayDrop(putRepl int, putAt time.Time, needRepl int, committed time.Time) bool {
	return putRepl <= needRepl || committed.After(putAt)
}

// fetch copies a block from another replica into the local store. A copy
// that would cross the node's reserve is not started (a *disk.FullError);
// one that meets ENOSPC is removed.
func (r *Repairer) fetch(ctx context.Context, b BlockRef, repl int) error {
	st := r.fs.cfg.Store
	if err := st.Check(max(b.Size, 0)); err != nil {
		return err
	}
	f, err := st.TempFile()
	if err != nil {
		return err
	}
	if err := r.fs.readBlock(ctx, b, repl, st.SpoolWriter(f)); err != nil {
		f.Close()
		removeFile(f)
		return err
	}
	return st.Adopt(b.ID, f)
}

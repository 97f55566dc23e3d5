package blockstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"shoal.dev/shoal/disk"
)

// WriteStats counts what this node's block writers did since start, for
// /metrics. Every writer — fs put, job output, the manifest of a file —
// goes through the same pipeline, so these cover them all.
type WriteStats struct {
	Blocks      atomic.Int64 // blocks written (at least one copy)
	Substituted atomic.Int64 // blocks with a copy on a non-owner, as an owner failed or is suspect
	Under       atomic.Int64 // blocks written with fewer copies than asked
	Failed      atomic.Int64 // blocks no target could store
}

// suspectFor is how long a node whose block write failed is tried only
// after every other candidate: gossip takes a few seconds to declare a dead
// node, and every block meanwhile would otherwise try it first.
const suspectFor = 30 * time.Second

// nextTargets is the pure core of the write pipeline: given a block's
// candidates in ring order (pref: every alive member, its R owners first),
// how many copies are wanted, the nodes that already hold a copy (done),
// those being written (busy), those that failed, and the nodes suspected
// dead or low on disk (tried only when no one else is left), it returns the nodes to start
// writing to now — the first candidates not yet used, enough to bring
// done+busy up to want. An empty answer with nothing busy means the write
// is over: at want copies, or out of candidates.
func nextTargets(pref []string, want int, done, busy, failed []string, suspect func(string) bool) []string {
	need := want - len(done) - len(busy)
	if need <= 0 {
		return nil
	}
	used := func(n string) bool {
		return slices.Contains(done, n) || slices.Contains(busy, n) || slices.Contains(failed, n)
	}
	var out []string
	for pass := 0; pass < 2 && len(out) < need; pass++ {
		for _, n := range pref {
			if len(out) == need {
				break
			}
			if used(n) || slices.Contains(out, n) || (suspect != nil && suspect(n) != (pass == 1)) {
				continue
			}
			out = append(out, n)
		}
	}
	return out
}

// BlockWriteError says that no member could store a block: a write fails
// only then. It names the block and every node tried; why each failed is in
// this node's log.
type BlockWriteError struct {
	ID     ID
	Index  int // the block's place in its file; -1 for a manifest
	Failed []string
	// Full holds, for each failed node that refused the block for want of
	// space, its reason (a *disk.FullError's text).
	Full map[string]string
}

func (e *BlockWriteError) Error() string {
	what := fmt.Sprintf("block %d (%s)", e.Index, e.ID.Short())
	if e.Index < 0 {
		what = fmt.Sprintf("the manifest block (%s)", e.ID.Short())
	}
	if len(e.Failed) == 0 {
		return what + " could not be stored: no alive member to store it on; check `shoal members`"
	}
	var other, full []string
	for _, n := range e.Failed {
		if r, ok := e.Full[n]; ok {
			full = append(full, r)
		} else {
			other = append(other, n)
		}
	}
	if len(other) == 0 {
		return fmt.Sprintf("%s could not be stored: no member has room for it (%s); free space or add nodes, then put again",
			what, strings.Join(full, "; "))
	}
	msg := fmt.Sprintf("%s could not be stored on any member: %s failed (the agents' logs say why)", what, listNodes(other))
	if len(full) > 0 {
		msg += "; " + strings.Join(full, "; ")
	}
	return msg + "; check `shoal members` and put again"
}

// ErrFull is disk.ErrFull: a refusal for want of space wraps it.
var ErrFull = disk.ErrFull

func listNodes(ns []string) string {
	if len(ns) <= 1 {
		return strings.Join(ns, "")
	}
	return strings.Join(ns[:len(ns)-1], ", ") + " and " + ns[len(ns)-1]
}

// blockWrite names one block being written, for logs and errors.
type blockWrite struct {
	file  string
	index int // -1: the file's manifest
	id    ID
	size  int64
	want  int
	// spool, if set, is a file in this node's store's tmp dir holding
	// exactly the block's bytes, already hashed to id (the source the
	// copies are read from). When this node is one of the targets, the
	// file is linked into the store (Store.Link) rather than copied.
	spool *os.File
	// sums, if set, are the spool's chunk sums, computed as it was
	// hashed; Link computes them from the spool otherwise.
	sums *blockSums
	// early: the write started before the blocks it lists were stored (a
	// manifest sent with the last block). Its failure is not counted here:
	// when a block failed too, the put failed once, for that block.
	early bool
}

func (b blockWrite) String() string {
	if b.index < 0 {
		return fmt.Sprintf("the manifest (%s) of %s", b.id.Short(), b.file)
	}
	return fmt.Sprintf("block %d (%s) of %s", b.index, b.id.Short(), b.file)
}

// writeBlock stores the block read from src on want nodes: its ring owners
// first, and for every owner that fails, the next candidate on the ring
// (nextTargets). It returns how many copies were written; it fails only
// when none was. A block left with fewer than want copies is counted and
// logged: the repair loop brings it to R once enough members are alive.
// Transport errors go to the log, never into the returned error.
func (fs *FS) writeBlock(ctx context.Context, b blockWrite, src io.ReaderAt) (int, error) {
	rg := fs.cfg.Ring()
	pref := rg.Owners(b.id.String(), rg.Len())
	type result struct {
		node string
		err  error
	}
	results := make(chan result)
	var done, busy, failed []string
	full := map[string]string{}
	owners := pref[:min(b.want, len(pref))]
	substituted := false // a copy went to a node other than an owner
	start := func(nodes []string) {
		for _, n := range nodes {
			substituted = substituted || !slices.Contains(owners, n)
			busy = append(busy, n)
			go func() {
				if n == fs.cfg.Self && b.spool != nil {
					err := fs.cfg.Store.link(b.id, b.spool, b.sums)
					if err == nil {
						fs.cfg.Store.NotePut(b.id, b.want)
					}
					results <- result{n, err}
					return
				}
				results <- result{n, fs.writeTo(ctx, n, b.id, io.NewSectionReader(src, 0, b.size), b.size, b.want, b.sums)}
			}()
		}
	}
	start(nextTargets(pref, b.want, nil, nil, nil, fs.avoid))
	for len(busy) > 0 {
		r := <-results
		busy = slices.DeleteFunc(busy, func(n string) bool { return n == r.node })
		if r.err == nil {
			done = append(done, r.node)
			continue
		}
		failed = append(failed, r.node)
		if ctx.Err() != nil {
			continue // the writer gave up: no substitutes
		}
		fs.markSuspect(r.node)
		next := nextTargets(pref, b.want, done, busy, failed, fs.avoid)
		if errors.Is(r.err, disk.ErrFull) {
			full[r.node] = r.err.Error()
			where := "no other member to store it on"
			if len(next) > 0 {
				where = "storing it on " + listNodes(next) + " instead"
			}
			fs.log.Warn(fmt.Sprintf("%s has no room for %s; %s", r.node, b, where), "node", r.node, "block", b.id.String(), "reason", r.err.Error())
		} else if len(next) > 0 {
			fs.log.Warn(fmt.Sprintf("%s failed while storing %s; storing it on %s instead", r.node, b, listNodes(next)),
				"node", r.node, "block", b.id.String(), "err", r.err)
		} else {
			fs.log.Warn(fmt.Sprintf("%s failed while storing %s; no other member to store it on", r.node, b),
				"node", r.node, "block", b.id.String(), "err", r.err)
		}
		start(next)
	}
	if err := ctx.Err(); err != nil {
		return len(done), err
	}
	if substituted {
		fs.Writes.Substituted.Add(1)
	}
	if len(done) == 0 {
		if !b.early {
			fs.Writes.Failed.Add(1)
		}
		return 0, &BlockWriteError{ID: b.id, Index: b.index, Failed: slices.Sorted(slices.Values(failed)), Full: full}
	}
	fs.Writes.Blocks.Add(1)
	if len(done) < b.want {
		fs.Writes.Under.Add(1)
		when := "once enough members are alive"
		if len(full) > 0 {
			when = "once enough members are alive and have room"
		}
		fs.log.Warn(fmt.Sprintf("%s stored with %d of %d copies; the repair loop copies it %s", b, len(done), b.want, when),
			"block", b.id.String(), "holders", strings.Join(done, ","), "failed", strings.Join(failed, ","))
	}
	return len(done), nil
}

// writeTo writes one copy of a block to node, which may be this node.
// sums, if not nil, are the block's chunk sums computed as its bytes were
// hashed to id: another node checks the bytes it receives against them
// (Store.write) rather than hashing them again.
func (fs *FS) writeTo(ctx context.Context, node string, id ID, r io.Reader, size int64, repl int, sums *blockSums) error {
	if node == fs.cfg.Self {
		err := fs.cfg.Store.write(id, r, size, sums)
		if err == nil {
			fs.cfg.Store.NotePut(id, repl)
		}
		return err
	}
	return fs.cfg.Client.put(ctx, node, id, r, size, repl, sums)
}

// markSuspect remembers that a write to node failed.
func (fs *FS) markSuspect(node string) {
	fs.mu.Lock()
	fs.suspects[node] = fs.cfg.Now()
	fs.mu.Unlock()
}

// suspect reports whether a write to node failed within suspectFor.
func (fs *FS) suspect(node string) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	t, ok := fs.suspects[node]
	if ok && fs.cfg.Now().Sub(t) > suspectFor {
		delete(fs.suspects, node)
		return false
	}
	return ok
}

// avoid reports whether the pipeline should try node only after every
// other candidate: a write to it failed lately, or it says it is low on
// disk.
func (fs *FS) avoid(node string) bool {
	return fs.suspect(node) || (fs.cfg.Low != nil && fs.cfg.Low(node))
}

// owners is where block id with repl copies belongs now: the first repl
// members in ring order that are not low on disk (FSConfig.Low) — fewer
// when fewer have room. The write pipeline places new copies in this
// order, and the repair loop fetches a block on exactly these nodes, so a
// node low on disk is never made to fetch a copy: a block stays below R
// until enough members have room.
func (fs *FS) owners(id ID, repl int) []string {
	rg := fs.cfg.Ring()
	if fs.cfg.Low == nil {
		return rg.Owners(id.String(), repl)
	}
	out := make([]string, 0, repl)
	for _, n := range rg.Owners(id.String(), rg.Len()) {
		if len(out) == repl {
			break
		}
		if !fs.cfg.Low(n) {
			out = append(out, n)
		}
	}
	return out
}

package scheduler

import (
	"cmp"
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Each node's cache of shipped programs (Config.BinDir) is pruned by the
// scheduler's loop, a pass a minute (binGCEvery) and one as soon as the
// node sees a program's file deleted in the cluster. A cached program is
// kept while a job that has not ended uses it (its job record names it and
// no end record exists) or a submission on this node is checking it;
// otherwise it is deleted when the cluster no longer stores it (the
// clean-up of BinaryDir deleted it), when it was last used longer ago than
// Config.BinCacheAge, or, least recently used first, while the cache is
// over Config.BinCacheBytes. The leftover of a fetch that did not finish
// (NAME.tmp) is deleted: a pass runs only while no fetch does.
//
// The same pass repairs: a program that a job which has not ended uses,
// that this node caches (a copy verified when it was fetched, or by the
// submission here) and that the cluster no longer stores is stored again
// from the cache (binRepairPlan, repairBinaries), as keepProgram does at
// submission. It covers a clean-up pass that read the job records just
// before a new job's record reached it, and a partition whose larger side
// deleted the program of a job submitted on the smaller one. The clean-up
// of BinaryDir never deletes a program that a job without an end record
// uses, and a program stored again is new for the grace period, so the
// two cannot undo each other in a loop (see README.md).

// DefaultBinCacheAge is how long a cached program no running job uses is
// kept after its last use.
const DefaultBinCacheAge = 24 * time.Hour

// DefaultBinCacheBytes bounds the cached programs no running job uses.
const DefaultBinCacheBytes = 4 << 30

// cachedBin is a file of the program cache: its name, size and last use
// (its modification time, which binary sets on every use; Unix ns).
type cachedBin struct {
	name string
	size int64
	used int64
}

// binCacheRule is what the cache may hold.
type binCacheRule struct {
	maxAge   time.Duration
	maxBytes int64
}

// binCachePlan decides which files of the program cache to delete, given
// the programs pinned (used by a job that has not ended, or by a
// submission in progress here) and those the cluster stores (listed in
// BinaryDir). It must be called only while no fetch is in progress: every
// NAME.tmp is then a dead fetch's. Files that are neither a program
// (a SHA-256 name) nor a fetch's leftover are not the cache's, and stay.
func binCachePlan(cached []cachedBin, pinned, stored map[string]bool, now time.Time, rule binCacheRule) []string {
	var out, lru []string
	var left []cachedBin
	var total int64
	cutoff := now.Add(-rule.maxAge).UnixNano()
	for _, c := range cached {
		switch {
		case strings.HasSuffix(c.name, ".tmp") && validSum(strings.TrimSuffix(c.name, ".tmp")):
			out = append(out, c.name)
		case !validSum(c.name) || pinned[c.name]:
		case !stored[c.name] || c.used < cutoff:
			out = append(out, c.name)
		default:
			left = append(left, c)
			total += c.size
		}
	}
	slices.SortFunc(left, func(a, b cachedBin) int {
		return cmp.Or(cmp.Compare(a.used, b.used), strings.Compare(a.name, b.name))
	})
	for _, c := range left {
		if total <= rule.maxBytes {
			break
		}
		lru = append(lru, c.name)
		total -= c.size
	}
	return append(out, lru...)
}

// binRepairPlan decides which programs to store again from this node's
// cache: those cached here (a file named after its SHA-256, so verified:
// a fetch renames its NAME.tmp only after the check) that a job which has
// not ended uses (running) and the cluster does not store, sorted.
func binRepairPlan(cached []cachedBin, running, stored map[string]bool) []string {
	var out []string
	for _, c := range cached {
		if validSum(c.name) && running[c.name] && !stored[c.name] {
			out = append(out, c.name)
		}
	}
	slices.Sort(out)
	return out
}

// repairBinaries stores the programs sums again from this node's cache
// (keepProgram: it first pulls each file's record from every member, so a
// record this node had not received yet is not taken for a deletion). It
// runs in the background, one repair at a time, so the scheduler's loop
// does not wait for the stores, and reports false if another repair was
// still running (the caller asks for the next pass then); a program still
// missing after it is found again by a later pass (the record watch asks
// for one when a program's record is deleted, and one runs every
// binGCEvery).
func (s *Scheduler) repairBinaries(ctx context.Context, sums []string) bool {
	if !s.binRepairing.CompareAndSwap(false, true) {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.binRepairing.Store(false)
		for _, sum := range sums {
			if ctx.Err() != nil {
				return
			}
			s.keepProgram(ctx, sum, "a running")
		}
	}()
	return true
}

// pinBinary marks the program sum in use by a submission on this node
// until the returned func is called.
func (s *Scheduler) pinBinary(sum string) func() {
	s.mu.Lock()
	s.binPins[sum]++
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		if s.binPins[sum]--; s.binPins[sum] <= 0 {
			delete(s.binPins, sum)
		}
		s.mu.Unlock()
	}
}

// runningBinaries returns the programs of the jobs the records hold that
// have not ended.
func (s *Scheduler) runningBinaries() map[string]bool {
	ended := map[string]bool{}
	for _, r := range s.cfg.Records.Scan(statePrefix) {
		ended[strings.TrimPrefix(r.Key, statePrefix)] = true
	}
	out := map[string]bool{}
	for _, r := range s.cfg.Records.Scan(jobPrefix) {
		if ended[strings.TrimPrefix(r.Key, jobPrefix)] {
			continue
		}
		var rec JobRecord
		if decode(r.Value, &rec) != nil {
			continue
		}
		if rec.Binary != "" {
			out[rec.Binary] = true
		}
	}
	return out
}

// pruneBinCache applies binCachePlan to this node's program cache. It
// skips the pass while a fetch runs (binMu is held), and holds binMu while
// it deletes, so no fetch starts meanwhile.
func (s *Scheduler) pruneBinCache(ctx context.Context, now time.Time) {
	if s.cfg.BinDir == "" {
		return
	}
	if !s.binCacheDue && now.Sub(s.lastBinCache) < min(binGCEvery, s.cfg.BinCacheAge) {
		return
	}
	if !s.binMu.TryLock() {
		return // a fetch is in progress: at the next retain pass
	}
	defer s.binMu.Unlock()
	s.lastBinCache, s.binCacheDue = now, false
	es, err := os.ReadDir(s.cfg.BinDir)
	if err != nil || len(es) == 0 {
		return // nothing cached yet
	}
	var cached []cachedBin
	for _, e := range es {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		cached = append(cached, cachedBin{name: e.Name(), size: fi.Size(), used: fi.ModTime().UnixNano()})
	}
	running := s.runningBinaries()
	pinned := maps.Clone(running)
	s.mu.Lock()
	for sum := range s.binPins {
		pinned[sum] = true
	}
	s.mu.Unlock()
	stored := map[string]bool{}
	if ls, err := s.cfg.FS.List(BinaryDir); err == nil {
		for _, e := range ls {
			if e.File != nil {
				stored[filepath.Base(e.File.Path)] = true
			}
		}
	}
	if sums := binRepairPlan(cached, running, stored); len(sums) > 0 && !s.repairBinaries(ctx, sums) {
		s.binCacheDue = true // a repair is still storing: this again at the next pass
	}
	for _, name := range binCachePlan(cached, pinned, stored, now, binCacheRule{maxAge: s.cfg.BinCacheAge, maxBytes: s.cfg.BinCacheBytes}) {
		if err := os.Remove(filepath.Join(s.cfg.BinDir, name)); err != nil && !os.IsNotExist(err) {
			s.log.Warn("shipped program cache clean-up", "file", name, "err", err)
			continue
		}
		s.log.Info("deleted a cached shipped program no running job uses", "file", name)
	}
}

package scheduler

import (
	"math"
	"path"
	"slices"
	"strings"
	"time"

	"shoal.dev/shoal/ring"
)

// Shipped programs (BinaryDir) are collected: a program that no job
// which has not ended references (running or queued: a job record without
// an end record) is deleted once it was stored longer ago than the grace
// period (which covers the time between a client's upload and its
// submission) and the last job the history remembers that used it ended
// longer ago than the grace period too. An ended job does not keep its
// program: no command on an ended job (status, counters, logs) runs it,
// and a job history of DefaultJobHistory jobs would otherwise keep up to
// that many programs of tens of MB, R copies each. One node deletes: the
// owner of binGCKey on the ring of alive members, once its metadata has
// been in sync with every alive member (Config.CanCollect) and while it
// sees more members alive than failed (Config.FailedMembers); a pass every
// binGCEvery deletes at most maxBinGC programs, oldest first.

// DefaultBinaryGrace is the default grace period of a stored program that
// no remembered job references.
const DefaultBinaryGrace = time.Hour

// binGCKey is placed on the ring to choose the node that collects.
const binGCKey = "gc:" + BinaryDir

// maxBinGC bounds the programs one pass deletes.
const maxBinGC = 64

// binGCEvery is the period of the passes (or a quarter of the grace
// period, if shorter, but not under the scheduler's Interval): a pass may
// read every job record.
const binGCEvery = time.Minute

// binGCView is the membership the clean-up decides on: the members that
// may take tasks (the owner of binGCKey is chosen among them), and the
// numbers of members alive (usable or not) and failed.
type binGCView struct {
	usable        []string
	alive, failed int
}

// storedBin is a file of BinaryDir: its path and when it was stored (Unix
// nanoseconds).
type storedBin struct {
	path string
	at   int64
}

// binGCPlan decides which stored programs to delete: those whose name (a
// SHA-256) was stored before now-grace and that no job used since:
// lastUse holds, by program, the end of the last ended job that used it
// (Unix ns) or math.MaxInt64 while a job that has not ended uses it. None
// unless self owns binGCKey among alive; at most maxBinGC, oldest first.
//
// Nor unless this node sees a majority: more members alive than failed
// (dead, not left, not yet given up on; view.failed). A node cut off from
// most of the cluster may not know the jobs submitted on the other side,
// which may be using an old program; two halves of one size both wait.
func binGCPlan(stored []storedBin, lastUse map[string]int64, view binGCView, self string, now time.Time, grace time.Duration) []string {
	if view.alive <= view.failed || ring.New(ring.Config{}, view.usable...).Owner(binGCKey) != self {
		return nil
	}
	cutoff := now.Add(-grace).UnixNano()
	var old []storedBin
	for _, b := range stored {
		if lastUse[path.Base(b.path)] < cutoff && b.at < cutoff {
			old = append(old, b)
		}
	}
	slices.SortFunc(old, func(a, b storedBin) int {
		if a.at != b.at {
			if a.at < b.at {
				return -1
			}
			return 1
		}
		return strings.Compare(a.path, b.path)
	})
	var out []string
	for _, b := range old[:min(len(old), maxBinGC)] {
		out = append(out, b.path)
	}
	return out
}

// collectBinaries applies binGCPlan. The job records are read only when
// this node collects and some program is past its grace period.
func (s *Scheduler) collectBinaries(now time.Time) {
	if s.cfg.CanCollect != nil && !s.cfg.CanCollect() {
		return // safe mode: this node may not know every job yet
	}
	view := binGCView{usable: s.alive(), alive: s.cfg.Ring().Len()}
	if s.cfg.FailedMembers != nil {
		view.failed = s.cfg.FailedMembers()
	}
	if ring.New(ring.Config{}, view.usable...).Owner(binGCKey) != s.cfg.Self {
		return
	}
	if now.Sub(s.lastBinGC) < min(binGCEvery, max(s.cfg.BinaryGrace/4, s.cfg.Interval)) {
		return
	}
	s.lastBinGC = now
	es, err := s.cfg.FS.List(BinaryDir)
	if err != nil {
		return // no programs stored
	}
	cutoff := now.Add(-s.cfg.BinaryGrace).UnixNano()
	var stored []storedBin
	due := false
	for _, e := range es {
		if e.File == nil {
			continue
		}
		stored = append(stored, storedBin{path: e.File.Path, at: e.File.ModTime})
		due = due || e.File.ModTime < cutoff
	}
	if !due {
		return
	}
	// Each program's last use: math.MaxInt64 while a job that has not
	// ended uses it, else the end of the last ended job (retain decoded
	// the ends this pass: stateAts).
	lastUse := map[string]int64{}
	for _, r := range s.cfg.Records.Scan(jobPrefix) {
		var rec JobRecord
		if decode(r.Value, &rec) != nil {
			// A record this node cannot read may name any program: keep
			// them all this pass.
			s.log.Warn("shipped program clean-up skipped: a job record does not decode", "key", r.Key)
			return
		}
		if rec.Binary == "" {
			continue
		}
		use := int64(math.MaxInt64)
		if st, ok := s.stateAts[rec.ID]; ok {
			use = st.at
		} else if _, ended := s.cfg.Records.Get(statePrefix + rec.ID); ended {
			use = now.UnixNano() // ended after retain's scan (or unreadable): just now
		}
		lastUse[rec.Binary] = max(lastUse[rec.Binary], use)
	}
	for _, p := range binGCPlan(stored, lastUse, view, s.cfg.Self, now, s.cfg.BinaryGrace) {
		if _, err := s.cfg.FS.Remove(p, false); err != nil {
			s.log.Warn("shipped program clean-up", "path", p, "err", err)
			continue
		}
		s.log.Info("deleted a shipped program no job used for the grace period", "path", p)
	}
}

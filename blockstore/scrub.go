package blockstore

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"
)

// DefaultScrubRate is the bytes per second the scrub reads by default.
const DefaultScrubRate = 8 << 20

// ScrubConfig shapes the background scrub.
type ScrubConfig struct {
	// Rate is the bytes per second the scrub reads, averaged over each
	// block (a block is read at disk speed, then the scrub waits until
	// its share of time has passed). Must be positive.
	Rate int64
	// Settle skips blocks stored (or stored again) less than this long
	// ago: blocks being written, whose bytes were hashed as they were
	// stored. Default 1m.
	Settle time.Duration
	// Pause is the wait between rounds, and before the first. Default 10s.
	Pause time.Duration
	// OnCorrupt, if set, is called with each block whose local copy the
	// scrub found corrupt (and quarantined), as to kick the repair loop.
	// It must not block.
	OnCorrupt func(ID)
}

func (c *ScrubConfig) fill() {
	if c.Rate <= 0 {
		c.Rate = DefaultScrubRate
	}
	if c.Settle <= 0 {
		c.Settle = time.Minute
	}
	if c.Pause <= 0 {
		c.Pause = 10 * time.Second
	}
}

// ScrubStats counts what the scrub did since start.
type ScrubStats struct {
	Bytes   atomic.Int64 // bytes of the blocks verified
	Blocks  atomic.Int64 // blocks verified
	Corrupt atomic.Int64 // of those, copies found corrupt (and quarantined)
	Failed  atomic.Int64 // reads that failed (an I/O error): neither verified nor corrupt
	Rounds  atomic.Int64 // rounds completed
}

// Scrubber verifies the store's blocks in the background, as HDFS's
// block scanner does, so that bit rot on a copy nobody reads is found
// while the other copies are still good: each round lists the stored
// blocks and verifies them with Store.Verify (SHA-256 against the ID)
// in scrubOrder, at Rate. A corrupt copy is quarantined and counted in
// Store.Corrupt exactly as on a read, and the repair loop fetches a good
// one. When each block was last verified is kept in memory only: after
// a restart every block counts as never verified, and the first round
// takes them oldest stored first.
type Scrubber struct {
	store *Store
	cfg   ScrubConfig
	log   *slog.Logger
	Stats ScrubStats

	// verified: when each block was last verified; touched only by Run's
	// goroutine, and pruned to the listed blocks each round.
	verified map[ID]time.Time
}

// NewScrubber returns a scrub of store; call Run.
func NewScrubber(store *Store, cfg ScrubConfig, log *slog.Logger) *Scrubber {
	cfg.fill()
	if log == nil {
		log = slog.Default()
	}
	return &Scrubber{store: store, cfg: cfg, log: log, verified: map[ID]time.Time{}}
}

// scrubOrder decides what one scrub round verifies, in order, from the
// blocks listed at its start: every block but those stored less than
// settle before now (being written, or just stored: their bytes were
// hashed as they were stored), the one verified longest ago first. A
// block never verified (absent from verified) comes before any verified
// one, and those in the order they were stored, oldest first; ties go by
// ID, so the order is total.
func scrubOrder(blocks []BlockInfo, verified map[ID]time.Time, now time.Time, settle time.Duration) []BlockInfo {
	out := make([]BlockInfo, 0, len(blocks))
	for _, b := range blocks {
		if now.Sub(b.ModTime) < settle {
			continue
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b BlockInfo) int {
		va, okA := verified[a.ID]
		vb, okB := verified[b.ID]
		switch {
		case okA != okB:
			if !okA {
				return -1
			}
			return 1
		case okA && !va.Equal(vb):
			return va.Compare(vb)
		case !a.ModTime.Equal(b.ModTime):
			return a.ModTime.Compare(b.ModTime)
		}
		return cmp.Compare(a.ID.String(), b.ID.String())
	})
	return out
}

// Run runs rounds until ctx ends, pausing Pause before each.
func (s *Scrubber) Run(ctx context.Context) {
	t := time.NewTimer(s.cfg.Pause)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.Round(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("block scrub: round incomplete", "err", err)
		}
		t.Reset(s.cfg.Pause)
	}
}

// Round verifies every block scrubOrder picks, at Rate, and returns when
// it has or ctx ends.
func (s *Scrubber) Round(ctx context.Context) error {
	list, err := s.store.List()
	if err != nil {
		return err
	}
	listed := make(map[ID]bool, len(list))
	for _, b := range list {
		listed[b.ID] = true
	}
	for id := range s.verified {
		if !listed[id] {
			delete(s.verified, id) // gone: deleted, dropped or quarantined
		}
	}
	for _, b := range scrubOrder(list, s.verified, time.Now(), s.cfg.Settle) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		start := time.Now()
		err := s.store.Verify(b.ID)
		switch {
		case err == nil:
			s.verified[b.ID] = time.Now()
			s.Stats.Blocks.Add(1)
			s.Stats.Bytes.Add(b.Size)
		case errors.Is(err, ErrNotFound):
			delete(s.verified, b.ID) // removed since the listing
			continue
		case errors.Is(err, ErrCorrupt):
			s.Stats.Blocks.Add(1)
			s.Stats.Bytes.Add(b.Size)
			s.Stats.Corrupt.Add(1)
			delete(s.verified, b.ID)
			s.log.Error("corrupt block copy quarantined", "block", b.ID.String(), "found_by", "scrub")
			if s.cfg.OnCorrupt != nil {
				s.cfg.OnCorrupt(b.ID)
			}
		default:
			// Not read, so not verified: it counts as never verified and
			// comes first again next round.
			s.Stats.Failed.Add(1)
			delete(s.verified, b.ID)
			s.log.Warn("block scrub: could not read a block; trying it again next round", "block", b.ID.Short(), "err", err)
		}
		// The block's share of time at Rate, counted from its start.
		wait := time.Duration(float64(b.Size)/float64(s.cfg.Rate)*float64(time.Second)) - time.Since(start)
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
	}
	s.Stats.Rounds.Add(1)
	return nil
}

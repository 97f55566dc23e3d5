package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"shoal.dev/shoal/blockstore"
)

// ErrOutputExists: the output directory exists, or another job writes it
// or is being submitted with it. Nothing was written.
var ErrOutputExists = errors.New("exists or is being written")

// OutputReserver reserves a job's output directory across the cluster, so
// that of two jobs submitted at once with one output exactly one is
// accepted. ReserveOutput returns an error matching ErrOutputExists when
// the directory exists or is taken; the job record is written through the
// reservation, which consumes it.
type OutputReserver interface {
	ReserveOutput(ctx context.Context, dir string) (blockstore.Reservation, error)
}

// OutputWriter returns the ID of a running job (one without a final state)
// that writes dir, reading this node's records. It runs under the create
// primary's one lock, for every output reservation and commit, so a job
// that has ended (most of them: the history keeps 1,000) is passed over by
// its state record's key before its job record is decoded.
func (s *Scheduler) OutputWriter(dir string) (string, bool) {
	ended := func(id string) bool {
		st, ok := s.cfg.Records.Get(statePrefix + id)
		return ok && !st.Deleted
	}
	for _, r := range s.cfg.Records.Scan(jobPrefix) {
		if r.Deleted || ended(strings.TrimPrefix(r.Key, jobPrefix)) {
			continue
		}
		var rec JobRecord
		if decode(r.Value, &rec) != nil || rec.Output != dir || ended(rec.ID) {
			continue
		}
		return rec.ID, true
	}
	return "", false
}

// reserveOutput holds dir for the job being submitted; nil without an
// OutputReserver (a scheduler of one node in tests).
func (s *Scheduler) reserveOutput(ctx context.Context, dir string) (blockstore.Reservation, error) {
	if s.cfg.Outputs == nil {
		return nil, nil
	}
	return s.cfg.Outputs.ReserveOutput(ctx, dir)
}

// writeJobRecord writes the job record, through the output's reservation
// when there is one.
func (s *Scheduler) writeJobRecord(ctx context.Context, res blockstore.Reservation, key string, value []byte) error {
	var err error
	if res != nil {
		_, err = res.Commit(ctx, key, value)
	} else {
		_, err = s.cfg.Records.Put(key, value)
	}
	if err != nil {
		return fmt.Errorf("write job record: %w", err)
	}
	return nil
}

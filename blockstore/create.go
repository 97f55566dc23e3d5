package blockstore

import (
	"context"
	"fmt"

	"shoal.dev/shoal/gossip"
)

// Reserver serializes the creation of a path across the cluster, so that of
// two puts of one path without overwrite exactly one writes its record.
// Reserve returns an error matching ErrExists when the path exists or
// another writer holds it.
type Reserver interface {
	Reserve(ctx context.Context, path string) (Reservation, error)
}

// Reservation is a writer's hold on a path. Commit writes the path's record
// through it (consuming it) and fails, writing nothing, when the hold was
// lost or the path was taken meanwhile (matching ErrExists). Release gives
// it up; it is safe after Commit and twice.
type Reservation interface {
	Commit(ctx context.Context, key string, value []byte) (gossip.Record, error)
	Release()
}

// CheckCreate returns an error when a file may not be created at p without
// overwrite: a file is there, a directory is, or a file is at one of its
// ancestors. It reads only this node's records.
func (fs *FS) CheckCreate(p string) error {
	p, err := CleanPath(p, false)
	if err != nil {
		return err
	}
	return fs.checkCreate(p, false)
}

// pendingReservation is a reservation being asked for while the put
// stores its blocks: a new primary may make the writer wait up to a lease
// TTL, and meanwhile the body keeps flowing.
type pendingReservation struct {
	cancel context.CancelFunc
	done   chan struct{}
	res    Reservation
	err    error
}

// reserve starts asking for a reservation of p, unless the put overwrites
// (a forced put replaces whatever is there, so it needs none) or the FS has
// no Reserver; it returns nil then. A refusal cancels the put through
// abort, so a loser stops storing blocks at once.
func (fs *FS) reserve(ctx context.Context, p string, overwrite bool, abort context.CancelCauseFunc) *pendingReservation {
	if overwrite || fs.cfg.Reserver == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	pr := &pendingReservation{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(pr.done)
		pr.res, pr.err = fs.cfg.Reserver.Reserve(ctx, p)
		if pr.err != nil {
			abort(pr.err)
		}
	}()
	return pr
}

// wait returns the reservation once the primary has answered.
func (pr *pendingReservation) wait(ctx context.Context) (Reservation, error) {
	select {
	case <-pr.done:
		return pr.res, pr.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// release gives the reservation up, or stops asking for it; after a
// commit it does nothing. Safe on nil.
func (pr *pendingReservation) release() {
	if pr == nil {
		return
	}
	pr.cancel()
	<-pr.done
	if pr.res != nil {
		pr.res.Release()
	}
}

// writeRecord writes the file record of p: through the reservation when
// there is one, else directly after checking again that the path is free.
func (fs *FS) writeRecord(ctx context.Context, pr *pendingReservation, p string, overwrite bool, rec []byte) error {
	if pr != nil {
		res, err := pr.wait(ctx)
		if err != nil {
			return fmt.Errorf("put %s: %w", p, err)
		}
		if _, err := res.Commit(ctx, fileKey(p), rec); err != nil {
			return fmt.Errorf("put %s: %w", p, err)
		}
		return nil
	}
	// Check again: another put may have won the path meanwhile.
	if err := fs.checkCreate(p, overwrite); err != nil {
		return err
	}
	if _, err := fs.cfg.Records.Put(fileKey(p), rec); err != nil {
		return fmt.Errorf("put %s: record: %w", p, err)
	}
	return nil
}

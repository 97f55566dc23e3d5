package peer

import (
	"context"
	"errors"
	"fmt"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/claim"
	"shoal.dev/shoal/gossip"
	"shoal.dev/shoal/scheduler"
)

// creates gives the file system and the scheduler their reservations from
// the node's claim service: puts without --force reserve the file's path,
// submissions reserve the output directory.
type creates struct{ n *Node }

// Reserve implements blockstore.Reserver.
func (c creates) Reserve(ctx context.Context, p string) (blockstore.Reservation, error) {
	r, err := c.n.claims.Reserve(ctx, claim.KindFile, p)
	if err != nil {
		return nil, fileRefusal(p, err)
	}
	return reservation{r: r, refused: func(err error) error { return fileRefusal(p, err) }}, nil
}

// ReserveOutput implements scheduler.OutputReserver.
func (c creates) ReserveOutput(ctx context.Context, dir string) (blockstore.Reservation, error) {
	r, err := c.n.claims.Reserve(ctx, claim.KindOutput, dir)
	if err != nil {
		return nil, outputRefusal(dir, err)
	}
	return reservation{r: r, refused: func(err error) error { return outputRefusal(dir, err) }}, nil
}

// reservation words a claim reservation's refusals for its user.
type reservation struct {
	r       *claim.Reservation
	refused func(error) error
}

func (r reservation) Commit(ctx context.Context, key string, value []byte) (gossip.Record, error) {
	rec, err := r.r.Commit(ctx, key, value)
	return rec, r.refused(err)
}

func (r reservation) Release() { r.r.Release() }

// refusal is a refusal in the primary's words that matches a sentinel of
// the package that asked.
type refusal struct {
	msg string
	is  error
}

func (e refusal) Error() string { return e.msg }
func (e refusal) Unwrap() error { return e.is }

// fileRefusal turns a refused reservation of a file into a
// blockstore.ErrExists; other errors pass.
func fileRefusal(p string, err error) error {
	var ref *claim.Refused
	switch {
	case !errors.As(err, &ref):
		return err
	case ref.Busy:
		return fmt.Errorf("%w: %s is being written by another put (on %s)", blockstore.ErrExists, p, ref.Holder)
	}
	return refusal{msg: ref.Reason, is: blockstore.ErrExists}
}

// outputRefusal turns a refused reservation of an output directory into a
// scheduler.ErrOutputExists; other errors pass.
func outputRefusal(dir string, err error) error {
	var ref *claim.Refused
	switch {
	case !errors.As(err, &ref):
		return err
	case ref.Busy:
		return fmt.Errorf("output %s %w: another submission (on %s) holds it", dir, scheduler.ErrOutputExists, ref.Holder)
	}
	return fmt.Errorf("output %s %w: %s", dir, scheduler.ErrOutputExists, ref.Reason)
}

// checkCreate is the primary's look at its records (claim.Config.Check).
func (n *Node) checkCreate(kind claim.Kind, p string) error {
	switch kind {
	case claim.KindFile:
		return n.fs.CheckCreate(p)
	case claim.KindOutput:
		if _, err := n.fs.Stat(p); err == nil {
			return errors.New("a file is there")
		}
		if _, err := n.fs.List(p); err == nil {
			return errors.New("files are below it")
		}
		if id, ok := n.sched.OutputWriter(p); ok {
			return fmt.Errorf("job %s writes it", id)
		}
		return nil
	}
	return fmt.Errorf("unknown kind %q", kind)
}

// syncCreate pulls the path's file records from every member before the
// primary decides (claim.Config.Sync). Job records are not pulled: every
// job record is written by the primary of its output.
func (n *Node) syncCreate(ctx context.Context, _ claim.Kind, p string) {
	n.syncRecords(ctx, fileRecordPrefix(p))
}

package blockstore

import (
	"context"
	"time"
)

// BlockAt returns the block of f that holds byte offset, and the offset
// within it; ok is false when offset is at or past the end.
func (fs *FS) BlockAt(ctx context.Context, f FileInfo, offset int64) (b BlockRef, within int64, ok bool, err error) {
	m, err := fs.Manifest(ctx, f)
	if err != nil {
		return BlockRef{}, 0, false, err
	}
	var pos int64
	for _, b := range m.Blocks {
		if offset < pos+b.Size {
			return b, offset - pos, true, nil
		}
		pos += b.Size
	}
	return BlockRef{}, 0, false, nil
}

// HolderOf returns an alive member other than this node that stores block
// id, asking its ring owners first and then a few other members (at most
// repl+4 in all), one at a time, each for at most a second; "" when none
// answers that it does.
func (fs *FS) HolderOf(ctx context.Context, id ID, repl int) string {
	asked := 0
	for _, node := range fs.candidates(id, repl) {
		if node == fs.cfg.Self {
			continue
		}
		if asked++; asked > max(repl, 1)+4 {
			break
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		has, _, err := fs.cfg.Client.Has(cctx, node, id)
		cancel()
		if err == nil && has {
			return node
		}
	}
	return ""
}

// HasLocal reports whether this node stores block id.
func (fs *FS) HasLocal(id ID) bool { return fs.cfg.Store.Has(id) }

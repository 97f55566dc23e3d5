package peer

import (
	"context"
	"net/http"

	"shoal.dev/shoal/blockstore"
)

// startConflictWatcher starts the file system's conflict detector, which
// runs until ctx ends: the same path written on both sides of a partition
// leaves the losing write as a conflict copy and a conflict record
// (blockstore/conflict.go).
func (n *Node) startConflictWatcher(ctx context.Context) {
	changes, cancel := n.gossip.Records().Watch(blockstore.FileKeyPrefix)
	w := n.fs.NewConflictWatcher(changes)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer cancel()
		w.Run(ctx)
	}()
}

// handleConflicts answers GET /v1/fs/conflicts: every conflict record.
func (n *Node) handleConflicts(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, wireConflicts(n.fs.Conflicts()))
}

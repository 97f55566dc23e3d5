package peer

import (
	"net/http"
	"shoal.dev/shoal/client"
	"syscall"
)

// DiskInfo answers GET /v1/fs/df: this node's share of the file system.
type DiskInfo = client.DiskInfo

func (n *Node) handleDf(w http.ResponseWriter, r *http.Request) {
	d := DiskInfo{Name: n.cfg.Name}
	d.Blocks, d.Used = n.blocks.Held()
	var fs syscall.Statfs_t
	if syscall.Statfs(n.cfg.DataDir, &fs) == nil {
		d.Capacity = int64(fs.Blocks) * int64(fs.Bsize)
		d.Free = int64(fs.Bavail) * int64(fs.Bsize)
	}
	writeJSON(w, http.StatusOK, d)
}

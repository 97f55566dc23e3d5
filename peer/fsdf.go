package peer

import (
	"context"
	"net/http"
	"syscall"
)

// DiskInfo answers GET /v1/fs/df: this node's share of the file system.
type DiskInfo struct {
	Name string `json:"name"`
	// Capacity and Free are the data dir's file system: its size, and the
	// bytes free to the agent; both 0 if it cannot be read.
	Capacity int64 `json:"capacity"`
	Free     int64 `json:"free"`
	// Used is the bytes of the blocks this node holds, Blocks their number.
	Used   int64 `json:"used"`
	Blocks int64 `json:"blocks"`
}

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

// Df reports the agent's node's capacity, free space, and the blocks it
// holds.
func (c *Client) Df(ctx context.Context) (DiskInfo, error) {
	var d DiskInfo
	err := c.do(ctx, http.MethodGet, "/v1/fs/df", nil, &d)
	return d, err
}

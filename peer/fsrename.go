package peer

import (
	"context"
	"encoding/json"
	"net/http"

	"shoal.dev/shoal/blockstore"
)

// RenameRequest is the body of POST /v1/fs/rename.
type RenameRequest struct {
	Src string `json:"src"`
	Dst string `json:"dst"`
}

// RenameInfo answers a rename: where the source went (inside Dst when Dst
// is a directory).
type RenameInfo struct {
	Src string `json:"src"`
	Dst string `json:"dst"`
}

func (n *Node) handleRename(w http.ResponseWriter, r *http.Request) {
	var req RenameRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil || req.Src == "" || req.Dst == "" {
		writeError(w, http.StatusBadRequest, `want a JSON body {"src": PATH, "dst": PATH}`)
		return
	}
	for _, p := range []string{req.Src, req.Dst} {
		n.syncRecords(r.Context(), fileRecordPrefix(p))
		n.syncRecords(r.Context(), blockstore.DirKeyPrefix+p)
	}
	dst, err := n.fs.Rename(r.Context(), req.Src, req.Dst)
	if err != nil {
		writeError(w, fsStatus(err), "mv "+req.Src+" "+req.Dst+": "+err.Error())
		return
	}
	n.log.Info("renamed", "from", req.Src, "to", dst)
	writeJSON(w, http.StatusOK, RenameInfo{Src: req.Src, Dst: dst})
}

// Rename moves the file or directory src to dst (into dst when it is a
// directory).
func (c *Client) Rename(ctx context.Context, src, dst string) (RenameInfo, error) {
	var ri RenameInfo
	return ri, c.do(ctx, "POST", "/v1/fs/rename", RenameRequest{Src: src, Dst: dst}, &ri)
}

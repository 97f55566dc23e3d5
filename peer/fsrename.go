package peer

import (
	"encoding/json"
	"net/http"
	"shoal.dev/shoal/client"

	"shoal.dev/shoal/blockstore"
)

// RenameRequest is the body of POST /v1/fs/rename.
type RenameRequest = client.RenameRequest

// RenameInfo answers a rename.
type RenameInfo = client.RenameInfo

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

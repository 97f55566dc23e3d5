package peer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"shoal.dev/shoal/client"
	"strconv"

	"shoal.dev/shoal/blockstore"
)

// The resumable put (see client.NextBlockLen): the client cuts a local
// file into blocks, sends each with PUT /v1/fs/block to any agent, and
// commits the acknowledged list with POST /v1/fs/commit to any agent. If
// its agent dies it goes on through another member from the first block
// not acknowledged.

// maxCommitBody bounds a commit request: MaxFileBlocks block references in
// JSON.
const maxCommitBody = 128 << 20

// ManifestHeader carries a file's manifest ID on a GET of the file.
const ManifestHeader = client.ManifestHeader

func (n *Node) handlePutBlock(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p, index, repl, err := checkBlockPut(q.Get("path"), q.Get("index"), q.Get("replication"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if r.ContentLength <= 0 || r.ContentLength > blockstore.MaxBlockSize {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("a block needs a Content-Length of 1..%d bytes", blockstore.MaxBlockSize))
		return
	}
	ack, release, err := n.fs.ReceiveBlock(r.Context(), p, index, r.Body, r.ContentLength, repl)
	if err != nil {
		status, body := n.blockRefusal(p, index, err)
		writeJSON(w, status, body)
		return
	}
	// The client has its answer, whole, before the spool is cleaned up
	// (see ReceiveBlock): its next block need not wait for that.
	writeJSONNow(w, http.StatusOK, wireAck(ack))
	release()
}

// checkBlockPut checks the path, index and replication of a block of a
// resumable put at the door, as PUT /v1/fs/block and the local socket
// take them, and returns them parsed (the path clean).
func checkBlockPut(path, index, repl string) (string, int, int, error) {
	p, err := blockstore.CleanPath(path, false)
	if err != nil {
		return "", 0, 0, err
	}
	i, err := strconv.Atoi(index)
	if err != nil || i < 0 || i >= blockstore.MaxFileBlocks {
		return "", 0, 0, fmt.Errorf("index %q: want a whole number below %d", index, blockstore.MaxFileBlocks)
	}
	r, err := strconv.Atoi(repl)
	if err != nil || r < 1 {
		return "", 0, 0, fmt.Errorf("replication %q: want a whole number, at least 1", repl)
	}
	return p, i, r, nil
}

func (n *Node) handleCommit(w http.ResponseWriter, r *http.Request) {
	var wreq client.CommitRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxCommitBody)).Decode(&wreq); err != nil {
		writeError(w, http.StatusBadRequest, "bad commit request: "+err.Error())
		return
	}
	req, err := commitRequest(wreq)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad commit request: "+err.Error())
		return
	}
	n.syncRecords(r.Context(), fileRecordPrefix(req.Path))
	f, err := n.fs.Commit(r.Context(), req)
	var me *blockstore.MissingBlocksError
	switch {
	case errors.As(err, &me):
		writeJSON(w, http.StatusConflict, apiError{Error: err.Error(), Missing: me.Indexes})
		return
	case err != nil:
		status := fsStatus(err)
		if status == http.StatusInternalServerError {
			status = http.StatusServiceUnavailable
		}
		writeError(w, status, err.Error())
		return
	}
	info := PutInfo{File: wireFile(f)}
	if f.Replication < req.Replication {
		info.Warning = fmt.Sprintf("replication %d capped at %d: only %d members are alive", req.Replication, f.Replication, f.Replication)
	}
	n.log.Info("file put", "path", f.Path, "size", f.Size, "blocks", f.Blocks, "replication", f.Replication, "resumable", true)
	writeJSON(w, http.StatusOK, info)
}

// handleGetBlock serves GET /v1/fs/block?id=ID[&offset=N]: one block from
// this node's own store, from byte offset N, each chunk checked against
// the block's checksums before a byte of it is sent (Store.Open): a
// corrupt first chunk is refused with 503, a later one cuts the response
// short; either way the copy is quarantined. A reader
// that knows a block's holders (GET /v1/fs/stat) reads it here without its
// bytes crossing the data plane; 404 when this node holds no copy.
func (n *Node) handleGetBlock(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, err := blockstore.ParseID(q.Get("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var offset int64
	if s := q.Get("offset"); s != "" {
		if offset, err = strconv.ParseInt(s, 10, 64); err != nil || offset < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("offset %q: want a byte offset, at least 0", s))
			return
		}
	}
	rc, size, err := n.fs.Store().Open(id, offset)
	switch {
	case errors.Is(err, blockstore.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s holds no copy of block %s", n.cfg.Name, id.Short()))
		return
	case errors.Is(err, blockstore.ErrCorrupt):
		n.log.Error("corrupt block copy quarantined", "block", id.String(), "requested_by", "api")
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil {
		if errors.Is(err, blockstore.ErrCorrupt) {
			n.log.Error("corrupt block copy quarantined", "block", id.String(), "requested_by", "api")
		}
		n.log.Debug("block read aborted", "block", id.Short(), "err", err)
		panic(http.ErrAbortHandler)
	}
}

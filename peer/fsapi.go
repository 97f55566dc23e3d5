package peer

import (
	"errors"
	"fmt"
	"net/http"
	"shoal.dev/shoal/client"
	"strconv"
	"strings"

	"shoal.dev/shoal/blockstore"
)

// PutInfo answers a put.
type PutInfo = client.PutInfo

// StatInfo answers a stat: the file and where each of its blocks is.
type StatInfo = client.StatInfo

// RemoveInfo answers a remove.
type RemoveInfo = client.RemoveInfo

func (n *Node) fsRoutes(mux *routes) {
	mux.Handle("PUT /v1/fs/file", n.auth(n.handlePut))
	mux.Handle("GET /v1/fs/file", n.auth(n.handleGet))
	mux.Handle("DELETE /v1/fs/file", n.auth(n.handleRemove))
	mux.Handle("GET /v1/fs/stat", n.auth(n.handleStat))
	mux.Handle("GET /v1/fs/list", n.auth(n.handleList))
	mux.Handle("GET /v1/fs/glob", n.auth(n.handleGlob))
	mux.Handle("PUT /v1/fs/block", n.auth(n.handlePutBlock))
	mux.Handle("GET /v1/fs/local", n.auth(n.handleLocalInfo))
	mux.Handle("GET /v1/fs/block", n.auth(n.handleGetBlock))
	mux.Handle("POST /v1/fs/commit", n.auth(n.handleCommit))
	mux.Handle("POST /v1/fs/rename", n.auth(n.handleRename))
	mux.Handle("GET /v1/fs/conflicts", n.auth(n.handleConflicts))
	mux.Handle("GET /v1/fs/df", n.auth(n.handleDf))
}

// fileRecordPrefix is the record key prefix covering path and everything
// below it (and, harmlessly, siblings that extend its name).
func fileRecordPrefix(path string) string {
	return blockstore.FileKeyPrefix + strings.TrimSuffix(path, "/")
}

// fsStatus maps file system errors to HTTP statuses.
func fsStatus(err error) int {
	switch {
	case errors.Is(err, blockstore.ErrBadPath):
		return http.StatusBadRequest
	case errors.Is(err, blockstore.ErrNoFile):
		return http.StatusNotFound
	case errors.Is(err, blockstore.ErrExists), errors.Is(err, blockstore.ErrIsDir):
		return http.StatusConflict
	case errors.Is(err, blockstore.ErrFull):
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError
}

func (n *Node) handlePut(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opts := blockstore.CreateOptions{Overwrite: q.Get("force") == "1" || q.Get("force") == "true"}
	if s := q.Get("block_size"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < blockstore.MinBlockSize || v > blockstore.MaxBlockSize {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("block size %q: want a number of bytes from %d (64 KB) to %d (2 GB)", s, blockstore.MinBlockSize, blockstore.MaxBlockSize))
			return
		}
		opts.BlockSize = v
	}
	if s := q.Get("replication"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("replication %q: want a whole number, at least 1", s))
			return
		}
		opts.Replication = v
	}
	n.syncRecords(r.Context(), fileRecordPrefix(q.Get("path")))
	want := opts.Replication
	if want == 0 {
		want = blockstore.DefaultReplication
	}
	f, err := n.fs.Create(r.Context(), q.Get("path"), r.Body, opts)
	if err != nil {
		writeError(w, fsStatus(err), err.Error())
		return
	}
	info := PutInfo{File: wireFile(f)}
	if f.Replication < want {
		info.Warning = fmt.Sprintf("replication %d capped at %d: only %d members are alive", want, f.Replication, f.Replication)
	}
	n.log.Info("file put", "path", f.Path, "size", f.Size, "blocks", f.Blocks, "replication", f.Replication)
	writeJSON(w, http.StatusOK, info)
}

func (n *Node) handleGet(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n.syncRecords(r.Context(), fileRecordPrefix(q.Get("path")))
	f, err := n.fs.Stat(q.Get("path"))
	if err != nil {
		writeError(w, fsStatus(err), err.Error())
		return
	}
	// A reader resuming after its agent died asks for the rest of the
	// version it was reading.
	if m := q.Get("manifest"); m != "" && m != f.Manifest.String() {
		writeError(w, http.StatusConflict, fmt.Sprintf("%s was replaced while it was being read; read it again", f.Path))
		return
	}
	var offset int64
	if s := q.Get("offset"); s != "" {
		offset, err = strconv.ParseInt(s, 10, 64)
		if err != nil || offset < 0 || offset > f.Size {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("offset %q: want a byte offset from 0 to %d", s, f.Size))
			return
		}
	}
	// Read the manifest before the first byte, so a missing one is a clean
	// error rather than a cut stream.
	if _, err := n.fs.Manifest(r.Context(), f); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(f.Size-offset, 10))
	w.Header().Set(ManifestHeader, f.Manifest.String())
	w.WriteHeader(http.StatusOK)
	if _, err := n.fs.WriteToFrom(r.Context(), f, offset, w); err != nil {
		n.log.Warn("get aborted", "path", f.Path, "err", err)
		// The client sees a cut stream, shorter than Content-Length.
		panic(http.ErrAbortHandler)
	}
}

func (n *Node) handleRemove(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n.syncRecords(r.Context(), fileRecordPrefix(q.Get("path")))
	removed, err := n.fs.Remove(q.Get("path"), q.Get("recursive") == "1" || q.Get("recursive") == "true")
	if err != nil {
		writeError(w, fsStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, RemoveInfo{Removed: removed})
}

func (n *Node) handleStat(w http.ResponseWriter, r *http.Request) {
	n.syncRecords(r.Context(), fileRecordPrefix(r.URL.Query().Get("path")))
	f, err := n.fs.Stat(r.URL.Query().Get("path"))
	if err != nil {
		writeError(w, fsStatus(err), err.Error())
		return
	}
	locs, err := n.fs.Locate(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, StatInfo{File: wireFile(f), Blocks: wireLocations(locs)})
}

func (n *Node) handleList(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Query().Get("path")
	if p == "" {
		p = "/"
	}
	n.syncRecords(r.Context(), fileRecordPrefix(p))
	es, err := n.fs.List(p)
	if err != nil {
		writeError(w, fsStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, wireEntries(es))
}

func (n *Node) handleGlob(w http.ResponseWriter, r *http.Request) {
	pattern := r.URL.Query().Get("pattern")
	static := pattern
	if i := strings.IndexAny(pattern, "*?[\\"); i >= 0 {
		static = pattern[:i]
	}
	n.syncRecords(r.Context(), fileRecordPrefix(static))
	fs, err := n.fs.Glob(pattern)
	if err != nil {
		writeError(w, fsStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, wireFiles(fs))
}

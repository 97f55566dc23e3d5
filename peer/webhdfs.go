package peer

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	"shoal.dev/shoal/blockstore"
)

// WebHDFS: Hadoop's REST file system API, so that tools that speak HDFS
// (fsspec and through it pandas and Dask, Node's webhdfs, HdfsCLI, curl
// scripts) read and write Shoal's files. Every agent serves it under
// /webhdfs/v1/PATH?op=OP on its API port, behind the same guard (deadlines,
// Origin and Host checks) as the rest of the API.
//
// Authentication: the cluster's API token as `delegation=TOKEN` (what the
// clients send) or as `Authorization: Bearer TOKEN`. `user.name` and `doas`
// are accepted and only name the home directory. Redirect locations carry
// the token as `delegation=`, because clients drop the Authorization header
// when a redirect goes to another port.
//
// Writes are Hadoop's two steps: CREATE and APPEND first answer 307 with a
// Location (or, with noredirect=true, 200 and {"Location": …}) naming this
// node with `data=true`; the client sends the bytes there. OPEN is served
// here (200) when this node stores the block at the offset asked, else
// redirected to a member that stores it, else served here from the
// replicas.

// webhdfsPrefix is the URL path WebHDFS lives under.
const webhdfsPrefix = "/webhdfs/v1"

// Hadoop's exception names: clients map them to their own errors (fsspec:
// FileNotFoundException → FileNotFoundError, SecurityException and
// AccessControlException → PermissionError, IllegalArgumentException and
// UnsupportedOperationException → ValueError).
const (
	exNotFound    = "FileNotFoundException"
	exExists      = "FileAlreadyExistsException"
	exNotEmpty    = "PathIsNotEmptyDirectoryException"
	exSecurity    = "SecurityException"
	exIllegalArg  = "IllegalArgumentException"
	exUnsupported = "UnsupportedOperationException"
	exIO          = "IOException"
	exBusy        = "AlreadyBeingCreatedException"
)

var javaClass = map[string]string{
	exNotFound:    "java.io.FileNotFoundException",
	exExists:      "org.apache.hadoop.fs.FileAlreadyExistsException",
	exNotEmpty:    "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException",
	exSecurity:    "java.lang.SecurityException",
	exIllegalArg:  "java.lang.IllegalArgumentException",
	exUnsupported: "java.lang.UnsupportedOperationException",
	exIO:          "java.io.IOException",
	exBusy:        "org.apache.hadoop.hdfs.protocol.AlreadyBeingCreatedException",
}

// RemoteException is the body of every WebHDFS error.
type RemoteException struct {
	Exception     string `json:"exception"`
	JavaClassName string `json:"javaClassName"`
	Message       string `json:"message"`
}

type remoteExceptionBody struct {
	RemoteException RemoteException `json:"RemoteException"`
}

// hdfsError is a WebHDFS error: the status, the exception's short name and
// the message.
type hdfsError struct {
	status    int
	exception string
	msg       string
}

func (e *hdfsError) Error() string { return e.msg }

func hdfsErr(status int, exception, format string, args ...any) *hdfsError {
	return &hdfsError{status: status, exception: exception, msg: fmt.Sprintf(format, args...)}
}

func writeHDFSError(w http.ResponseWriter, e *hdfsError) {
	writeJSON(w, e.status, remoteExceptionBody{RemoteException{Exception: e.exception, JavaClassName: javaClass[e.exception], Message: e.msg}})
}

// fsHDFSError maps a file system error to its WebHDFS status and
// exception, as Hadoop's ExceptionHandler does: not found 404, bad
// arguments 400, every other I/O failure 403.
func fsHDFSError(err error) *hdfsError {
	var he *hdfsError
	switch {
	case errors.As(err, &he):
		return he
	case errors.Is(err, blockstore.ErrBadPath):
		return hdfsErr(http.StatusBadRequest, exIllegalArg, "%s", err)
	case errors.Is(err, blockstore.ErrNoFile):
		return hdfsErr(http.StatusNotFound, exNotFound, "%s", err)
	case errors.Is(err, blockstore.ErrExists), errors.Is(err, blockstore.ErrIsDir):
		return hdfsErr(http.StatusForbidden, exExists, "%s", err)
	case errors.Is(err, blockstore.ErrChanged):
		return hdfsErr(http.StatusForbidden, exBusy, "%s", err)
	}
	return hdfsErr(http.StatusForbidden, exIO, "%s", err)
}

// FileStatus is Hadoop's FileStatus JSON object. Shoal has no owners or
// permissions: every file is owner "shoal", group "shoal", 644, every
// directory 755.
type FileStatus struct {
	AccessTime       int64  `json:"accessTime"`
	BlockSize        int64  `json:"blockSize"`
	ChildrenNum      *int   `json:"childrenNum,omitempty"`
	FileID           int64  `json:"fileId"`
	Group            string `json:"group"`
	Length           int64  `json:"length"`
	ModificationTime int64  `json:"modificationTime"`
	Owner            string `json:"owner"`
	PathSuffix       string `json:"pathSuffix"`
	Permission       string `json:"permission"`
	Replication      int    `json:"replication"`
	StoragePolicy    int    `json:"storagePolicy"`
	Type             string `json:"type"`
}

// ContentSummary is Hadoop's ContentSummary JSON object.
type ContentSummary struct {
	DirectoryCount int64          `json:"directoryCount"`
	FileCount      int64          `json:"fileCount"`
	Length         int64          `json:"length"`
	Quota          int64          `json:"quota"`
	SpaceConsumed  int64          `json:"spaceConsumed"`
	SpaceQuota     int64          `json:"spaceQuota"`
	TypeQuota      map[string]any `json:"typeQuota"`
}

// FileChecksum is Hadoop's FileChecksum JSON object. Shoal's checksum is
// the SHA-256 ID of the file's manifest, which names every block by its
// own SHA-256 and length: equal checksums mean equal bytes, but the same
// bytes cut into other blocks (another block size, or written by appends)
// have another checksum, as in HDFS.
type FileChecksum struct {
	Algorithm string `json:"algorithm"`
	Bytes     string `json:"bytes"`
	Length    int    `json:"length"`
}

// checksumAlgorithm names Shoal's file checksum.
const checksumAlgorithm = "SHOAL-SHA256-OF-MANIFEST"

// fileID is a stable inode number for a path.
func fileID(p string) int64 {
	h := fnv.New64a()
	h.Write([]byte(p))
	return int64(h.Sum64() >> 1)
}

func fileStatus(f blockstore.FileInfo, suffix string) FileStatus {
	return FileStatus{
		BlockSize:        f.BlockSize,
		FileID:           fileID(f.Path),
		Group:            "shoal",
		Length:           f.Size,
		ModificationTime: f.ModTime / 1e6,
		AccessTime:       f.ModTime / 1e6,
		Owner:            "shoal",
		PathSuffix:       suffix,
		Permission:       "644",
		Replication:      f.Replication,
		Type:             "FILE",
	}
}

func dirStatus(p, suffix string, mtime int64, children *int) FileStatus {
	return FileStatus{
		ChildrenNum:      children,
		FileID:           fileID(p),
		Group:            "shoal",
		ModificationTime: mtime / 1e6,
		AccessTime:       mtime / 1e6,
		Owner:            "shoal",
		PathSuffix:       suffix,
		Permission:       "755",
		Type:             "DIRECTORY",
	}
}

// hdfsParams are a request's query parameters with their names in lower
// case: WebHDFS names are case-insensitive, and unknown ones are ignored.
type hdfsParams map[string]string

func parseHDFSParams(q url.Values) hdfsParams {
	p := hdfsParams{}
	for k, vs := range q {
		if len(vs) > 0 {
			p[strings.ToLower(k)] = vs[0]
		}
	}
	return p
}

// bool parses a boolean parameter in any case; absent or empty is def.
func (p hdfsParams) bool(name string, def bool) (bool, error) {
	s, ok := p[name]
	if !ok || s == "" {
		return def, nil
	}
	switch strings.ToLower(s) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, hdfsErr(http.StatusBadRequest, exIllegalArg, "Invalid value for webhdfs parameter %q: %q is not true or false", name, s)
}

// int parses a whole-number parameter of at least lo; absent or empty is def.
func (p hdfsParams) int(name string, def, lo int64) (int64, error) {
	s, ok := p[name]
	if !ok || s == "" {
		return def, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo {
		return 0, hdfsErr(http.StatusBadRequest, exIllegalArg, "Invalid value for webhdfs parameter %q: %q is not a whole number of at least %d", name, s, lo)
	}
	return v, nil
}

// webhdfsOps lists every op and the method Hadoop serves it with.
var webhdfsOps = map[string]string{
	"GETFILESTATUS":     http.MethodGet,
	"LISTSTATUS":        http.MethodGet,
	"OPEN":              http.MethodGet,
	"GETCONTENTSUMMARY": http.MethodGet,
	"GETFILECHECKSUM":   http.MethodGet,
	"GETHOMEDIRECTORY":  http.MethodGet,
	"CREATE":            http.MethodPut,
	"MKDIRS":            http.MethodPut,
	"RENAME":            http.MethodPut,
	"APPEND":            http.MethodPost,
	"DELETE":            http.MethodDelete,
}

func (n *Node) webhdfsRoutes(mux *routes) {
	mux.HandleFunc(webhdfsPrefix+"/", n.handleWebHDFS)
	mux.HandleFunc(webhdfsPrefix, n.handleWebHDFS)
}

// webhdfsToken is the request's token: delegation= or the bearer header.
func webhdfsToken(r *http.Request, p hdfsParams) string {
	if t := p["delegation"]; t != "" {
		return t
	}
	t, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return t
}

func (n *Node) handleWebHDFS(w http.ResponseWriter, r *http.Request) {
	p := parseHDFSParams(r.URL.Query())
	if !n.cfg.Secret.CheckToken(webhdfsToken(r, p)) {
		writeHDFSError(w, hdfsErr(http.StatusUnauthorized, exSecurity, "missing or wrong token: give the cluster's API token (shoal token) as delegation=TOKEN or as a bearer token"))
		return
	}
	op := strings.ToUpper(p["op"])
	method, ok := webhdfsOps[op]
	if !ok {
		if op == "" {
			writeHDFSError(w, hdfsErr(http.StatusBadRequest, exIllegalArg, "missing webhdfs parameter \"op\""))
		} else {
			writeHDFSError(w, hdfsErr(http.StatusBadRequest, exUnsupported, "op=%s is not supported by Shoal's WebHDFS", quoteShort(op)))
		}
		return
	}
	if r.Method != method {
		writeHDFSError(w, hdfsErr(http.StatusBadRequest, exUnsupported, "op=%s is a %s operation, not %s", op, method, r.Method))
		return
	}
	fp := strings.TrimPrefix(r.URL.Path, webhdfsPrefix)
	if fp == "" {
		fp = "/"
	}
	if err := n.serveWebHDFS(w, r, op, fp, p); err != nil {
		writeHDFSError(w, fsHDFSError(err))
	}
}

// serveWebHDFS runs op on path fp. An error it returns is written as a
// RemoteException; it returns nil once it has answered.
func (n *Node) serveWebHDFS(w http.ResponseWriter, r *http.Request, op, fp string, p hdfsParams) error {
	ctx := r.Context()
	var dirOK bool
	switch op {
	case "GETFILESTATUS", "LISTSTATUS", "GETCONTENTSUMMARY", "MKDIRS", "DELETE", "GETHOMEDIRECTORY":
		dirOK = true
	}
	clean, err := blockstore.CleanPath(fp, dirOK)
	if err != nil {
		return err
	}
	fp = clean
	switch op {
	case "GETHOMEDIRECTORY":
		return n.hdfsHome(w, p)
	case "OPEN":
		return n.hdfsOpen(w, r, fp, p)
	case "CREATE":
		return n.hdfsCreate(w, r, fp, p)
	case "APPEND":
		return n.hdfsAppend(w, r, fp, p)
	case "GETFILECHECKSUM":
		n.syncRecords(ctx, fileRecordPrefix(fp))
		f, err := n.hdfsFile(fp)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]FileChecksum{"FileChecksum": {Algorithm: checksumAlgorithm, Bytes: f.Manifest.String(), Length: len(f.Manifest)}})
		return nil
	}
	n.syncRecords(ctx, fileRecordPrefix(fp))
	n.syncRecords(ctx, blockstore.DirKeyPrefix+strings.TrimSuffix(fp, "/"))
	switch op {
	case "GETFILESTATUS":
		st, err := n.hdfsStatus(fp)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]FileStatus{"FileStatus": st})
	case "LISTSTATUS":
		sts, err := n.hdfsList(fp)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]map[string][]FileStatus{"FileStatuses": {"FileStatus": sts}})
	case "GETCONTENTSUMMARY":
		cs, err := n.hdfsSummary(fp)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]ContentSummary{"ContentSummary": cs})
	case "MKDIRS":
		if err := n.fs.MakeDir(fp); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]bool{"boolean": true})
	case "DELETE":
		return n.hdfsDelete(w, fp, p)
	case "RENAME":
		return n.hdfsRename(w, r, fp, p)
	}
	return nil
}

// hdfsFile is the file at fp; a directory there is "not a file" (404), as
// Hadoop answers OPEN, APPEND and GETFILECHECKSUM of a directory.
func (n *Node) hdfsFile(fp string) (blockstore.FileInfo, error) {
	f, err := n.fs.Stat(fp)
	if errors.Is(err, blockstore.ErrIsDir) {
		return f, hdfsErr(http.StatusNotFound, exNotFound, "%s is a directory, not a file", fp)
	}
	return f, err
}

func (n *Node) hdfsStatus(fp string) (FileStatus, error) {
	if fp != "/" {
		f, err := n.fs.Stat(fp)
		if err == nil {
			return fileStatus(f, ""), nil
		}
		if !errors.Is(err, blockstore.ErrIsDir) {
			return FileStatus{}, err
		}
	}
	es, err := n.fs.List(fp)
	if err != nil {
		return FileStatus{}, err
	}
	children := len(es)
	return dirStatus(fp, "", n.dirMTime(fp, es), &children), nil
}

// dirMTime is a directory's modification time: its marker's, or the
// newest of the files directly in it.
func (n *Node) dirMTime(fp string, es []blockstore.Entry) int64 {
	t := n.fs.DirModTime(fp)
	for _, e := range es {
		if e.File != nil {
			t = max(t, e.File.ModTime)
		}
	}
	return t
}

func (n *Node) hdfsList(fp string) ([]FileStatus, error) {
	es, err := n.fs.List(fp)
	if err != nil {
		return nil, err
	}
	out := make([]FileStatus, 0, len(es))
	for _, e := range es {
		switch {
		case e.File != nil && e.File.Path == fp:
			out = append(out, fileStatus(*e.File, "")) // LISTSTATUS of a file
		case e.File != nil:
			out = append(out, fileStatus(*e.File, e.Name))
		default:
			out = append(out, dirStatus(e.Path, e.Name, n.fs.DirModTime(e.Path), nil))
		}
	}
	return out, nil
}

func (n *Node) hdfsSummary(fp string) (ContentSummary, error) {
	cs := ContentSummary{Quota: -1, SpaceQuota: -1, TypeQuota: map[string]any{}}
	if fp != "/" {
		if f, err := n.fs.Stat(fp); err == nil {
			cs.FileCount, cs.Length, cs.SpaceConsumed = 1, f.Size, f.Size*int64(f.Replication)
			return cs, nil
		} else if !errors.Is(err, blockstore.ErrIsDir) {
			return cs, err
		}
	}
	under := strings.TrimSuffix(fp, "/") + "/"
	dirs := map[string]bool{fp: true}
	addDirs := func(p string) {
		for d := path.Dir(p); strings.HasPrefix(d+"/", under) && d != fp; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for _, f := range n.fs.Files() {
		if strings.HasPrefix(f.Path, under) {
			cs.FileCount++
			cs.Length += f.Size
			cs.SpaceConsumed += f.Size * int64(f.Replication)
			addDirs(f.Path)
		}
	}
	for _, m := range n.fs.DirMarkersBelow(fp) {
		dirs[m] = true
		addDirs(m)
	}
	cs.DirectoryCount = int64(len(dirs))
	return cs, nil
}

func (n *Node) hdfsDelete(w http.ResponseWriter, fp string, p hdfsParams) error {
	recursive, err := p.bool("recursive", false)
	if err != nil {
		return err
	}
	if fp == "/" {
		return hdfsErr(http.StatusForbidden, exIO, "the root directory cannot be deleted")
	}
	_, err = n.fs.Remove(fp, recursive)
	switch {
	case errors.Is(err, blockstore.ErrNoFile):
		writeJSON(w, http.StatusOK, map[string]bool{"boolean": false}) // Hadoop: nothing deleted
		return nil
	case errors.Is(err, blockstore.ErrIsDir):
		return hdfsErr(http.StatusForbidden, exNotEmpty, "%s is a directory that is not empty: use recursive=true", fp)
	case err != nil:
		return err
	}
	n.log.Info("webhdfs delete", "path", fp, "recursive", recursive)
	writeJSON(w, http.StatusOK, map[string]bool{"boolean": true})
	return nil
}

func (n *Node) hdfsRename(w http.ResponseWriter, r *http.Request, fp string, p hdfsParams) error {
	dst := p["destination"]
	if dst == "" {
		return hdfsErr(http.StatusBadRequest, exIllegalArg, "RENAME needs the webhdfs parameter \"destination\"")
	}
	if _, err := blockstore.CleanPath(dst, false); err != nil {
		return err
	}
	n.syncRecords(r.Context(), fileRecordPrefix(dst))
	_, err := n.fs.Rename(r.Context(), fp, dst)
	switch {
	case errors.Is(err, blockstore.ErrNoFile), errors.Is(err, blockstore.ErrExists):
		// Hadoop's rename answers false when the source is missing or the
		// destination is taken.
		n.log.Info("webhdfs rename refused", "from", fp, "to", dst, "err", err)
		writeJSON(w, http.StatusOK, map[string]bool{"boolean": false})
		return nil
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"boolean": true})
	return nil
}

func (n *Node) hdfsHome(w http.ResponseWriter, p hdfsParams) error {
	user := p["user.name"]
	if user == "" {
		user = "shoal"
	}
	home, err := blockstore.CleanPath("/user/"+user, false)
	if err != nil || path.Dir(home) != "/user" {
		return hdfsErr(http.StatusBadRequest, exIllegalArg, "user.name %s cannot name a home directory", quoteShort(user))
	}
	writeJSON(w, http.StatusOK, map[string]string{"Path": home})
	return nil
}

// redirect answers the first step of a two-step op: 307 to loc, or with
// noredirect=true 200 and {"Location": loc}.
func redirect(w http.ResponseWriter, loc string, p hdfsParams) error {
	noRedirect, err := p.bool("noredirect", false)
	if err != nil {
		return err
	}
	if noRedirect {
		writeJSON(w, http.StatusOK, map[string]string{"Location": loc})
		return nil
	}
	w.Header().Set("Location", loc)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusTemporaryRedirect)
	return nil
}

// dataURL is the location of the second step of op on fp at base: the
// op's own parameters, data=true and the token.
func (n *Node) dataURL(base, op, fp string, p hdfsParams, keep ...string) string {
	q := url.Values{"op": {op}, "data": {"true"}}
	for _, k := range keep {
		if v, ok := p[k]; ok {
			q.Set(k, v)
		}
	}
	if !n.cfg.Secret.IsZero() {
		q.Set("delegation", n.cfg.Secret.APIToken())
	}
	return base + (&url.URL{Path: webhdfsPrefix + fp}).EscapedPath() + "?" + q.Encode()
}

// selfBase is this node's URL as the client reached it.
func selfBase(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// memberBase is member's API URL, or "" when it has none gossiped. A
// member bound to an unspecified address (0.0.0.0) is reached at its
// gossip host.
func (n *Node) memberBase(member string, r *http.Request) string {
	for _, m := range n.Members() {
		if m.Name != member || m.HTTP == "" {
			continue
		}
		host, port, err := net.SplitHostPort(m.HTTP)
		if err != nil {
			return ""
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			if gh, _, err := net.SplitHostPort(m.Gossip); err == nil {
				host = gh
			}
		}
		scheme := "http://"
		if r.TLS != nil {
			scheme = "https://"
		}
		return scheme + net.JoinHostPort(host, port)
	}
	return ""
}

// webhdfsCreateParams are CREATE's parameters that travel to its second step.
var webhdfsCreateParams = []string{"overwrite", "blocksize", "replication"}

func (n *Node) hdfsCreate(w http.ResponseWriter, r *http.Request, fp string, p hdfsParams) error {
	overwrite, err := p.bool("overwrite", false)
	if err != nil {
		return err
	}
	blockSize, err := p.int("blocksize", blockstore.DefaultBlockSize, 1)
	if err != nil {
		return err
	}
	if blockSize < blockstore.MinBlockSize || blockSize > blockstore.MaxBlockSize {
		return hdfsErr(http.StatusBadRequest, exIllegalArg, "blocksize %d: want %d (64 KB) to %d (2 GB)", blockSize, blockstore.MinBlockSize, blockstore.MaxBlockSize)
	}
	repl, err := p.int("replication", blockstore.DefaultReplication, 1)
	if err != nil {
		return err
	}
	if repl > 1<<15 {
		return hdfsErr(http.StatusBadRequest, exIllegalArg, "replication %d: at most %d", repl, 1<<15)
	}
	data, err := p.bool("data", false)
	if err != nil {
		return err
	}
	n.syncRecords(r.Context(), fileRecordPrefix(fp))
	if !data {
		// Fail early, before the client sends the bytes.
		if _, err := n.fs.Stat(fp); err == nil && !overwrite {
			return hdfsErr(http.StatusForbidden, exExists, "%s already exists (overwrite=true replaces it)", fp)
		} else if errors.Is(err, blockstore.ErrIsDir) {
			return hdfsErr(http.StatusForbidden, exExists, "%s already exists as a directory", fp)
		}
		return redirect(w, n.dataURL(selfBase(r), "CREATE", fp, p, webhdfsCreateParams...), p)
	}
	f, err := n.fs.Create(r.Context(), fp, r.Body, blockstore.CreateOptions{BlockSize: blockSize, Replication: int(repl), Overwrite: overwrite})
	if errors.Is(err, blockstore.ErrExists) && !overwrite {
		return hdfsErr(http.StatusForbidden, exExists, "%s already exists (overwrite=true replaces it)", fp)
	}
	if err != nil {
		return err
	}
	n.log.Info("webhdfs create", "path", f.Path, "size", f.Size, "blocks", f.Blocks, "replication", f.Replication)
	w.Header().Set("Location", "webhdfs://"+r.Host+(&url.URL{Path: f.Path}).EscapedPath())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (n *Node) hdfsAppend(w http.ResponseWriter, r *http.Request, fp string, p hdfsParams) error {
	data, err := p.bool("data", false)
	if err != nil {
		return err
	}
	n.syncRecords(r.Context(), fileRecordPrefix(fp))
	if !data {
		if _, err := n.hdfsFile(fp); err != nil {
			return err
		}
		return redirect(w, n.dataURL(selfBase(r), "APPEND", fp, p), p)
	}
	if _, err := n.hdfsFile(fp); err != nil {
		return err
	}
	f, err := n.fs.Append(r.Context(), fp, r.Body)
	if err != nil {
		return err
	}
	n.log.Debug("webhdfs append", "path", f.Path, "size", f.Size, "blocks", f.Blocks)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return nil
}

// openTarget decides where an OPEN is served: "" for here, or the member
// to redirect to. It is served here when the request was redirected
// already, when this node stores the block at the offset, or when no other
// member is known to store it (this node then reads the replicas).
func openTarget(redirected, local bool, holder string) string {
	if redirected || local {
		return ""
	}
	return holder
}

func (n *Node) hdfsOpen(w http.ResponseWriter, r *http.Request, fp string, p hdfsParams) error {
	ctx := r.Context()
	offset, err := p.int("offset", 0, 0)
	if err != nil {
		return err
	}
	length, err := p.int("length", -1, 0)
	if err != nil {
		return err
	}
	data, err := p.bool("data", false)
	if err != nil {
		return err
	}
	noRedirect, err := p.bool("noredirect", false)
	if err != nil {
		return err
	}
	n.syncRecords(ctx, fileRecordPrefix(fp))
	f, err := n.hdfsFile(fp)
	if err != nil {
		return err
	}
	if offset > f.Size {
		return hdfsErr(http.StatusForbidden, exIO, "offset %d is past the end of %s (%d bytes)", offset, fp, f.Size)
	}
	b, _, ok, err := n.fs.BlockAt(ctx, f, offset)
	if err != nil {
		return hdfsErr(http.StatusForbidden, exIO, "%s", err)
	}
	local := !ok || n.fs.HasLocal(b.ID)
	holder := ""
	if !data && !local {
		holder = n.fs.HolderOf(ctx, b.ID, f.Replication)
	}
	base := ""
	if target := openTarget(data, local, holder); target != "" {
		base = n.memberBase(target, r)
	}
	switch {
	case base != "":
		return redirect(w, n.dataURL(base, "OPEN", fp, p, "offset", "length"), p)
	case noRedirect && !data:
		return redirect(w, n.dataURL(selfBase(r), "OPEN", fp, p, "offset", "length"), p)
	}
	count := f.Size - offset
	if length >= 0 {
		count = min(count, length)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(count, 10))
	w.WriteHeader(http.StatusOK)
	if count == 0 {
		return nil
	}
	_, err = n.fs.WriteToFrom(ctx, f, offset, &stopWriter{w: w, n: count})
	if err != nil && !errors.Is(err, errRangeDone) {
		n.log.Warn("webhdfs open aborted", "path", f.Path, "offset", offset, "err", err)
		// The client sees a stream cut short of its Content-Length.
		panic(http.ErrAbortHandler)
	}
	return nil
}

// errRangeDone stops a read once an OPEN's length is written.
var errRangeDone = errors.New("range written")

// stopWriter passes on n bytes, then stops the copy with errRangeDone.
type stopWriter struct {
	w http.ResponseWriter
	n int64
}

func (s *stopWriter) Write(p []byte) (int, error) {
	if int64(len(p)) < s.n {
		k, err := s.w.Write(p)
		s.n -= int64(k)
		return k, err
	}
	k, err := s.w.Write(p[:s.n])
	s.n -= int64(k)
	if err != nil {
		return k, err
	}
	return k, errRangeDone
}

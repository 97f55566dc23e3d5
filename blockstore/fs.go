package blockstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"shoal.dev/shoal/gossip"
	"shoal.dev/shoal/ring"
)

// Records is the part of the replicated metadata store the file system
// uses. *gossip.Store implements it.
type Records interface {
	Put(key string, value []byte) (gossip.Record, error)
	Get(key string) (gossip.Record, bool)
	Delete(key string) error
	Scan(prefix string) []gossip.Record
	// First returns the live record with the smallest key at or after
	// from that starts with prefix (gossip.Store.First).
	First(prefix, from string) (gossip.Record, bool)
}

// FSConfig wires a file system. Every field is required but Logger and
// Parallel.
type FSConfig struct {
	// Self is this node's name.
	Self string
	// Store is the local block store.
	Store *Store
	// Client reaches other nodes' stores.
	Client *Client
	// Records holds the file records.
	Records Records
	// Ring returns the current ring of alive members.
	Ring func() *ring.Ring
	// Sources, if set, lists alive members outside the ring that may still
	// hold blocks (a member being drained: it takes no new blocks but
	// serves the ones it has until they are re-homed). Reads try them after
	// the ring's members, and Locate asks them too. Default: none.
	Sources func() []string
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Parallel is how many blocks a put sends at once. Default 4.
	Parallel int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Low, if set, reports whether a member says it is low on disk (below
	// its --reserve): the write pipeline tries such a node only when no
	// other is left, and the repair loop does not make it fetch copies
	// (see owners). It is called often and must be cheap.
	Low func(node string) bool
	// Reserver serializes puts without overwrite across the cluster. Nil
	// leaves them to the records alone: two concurrent puts of one path may
	// then both succeed, so only a file system of one node may omit it.
	Reserver Reserver
}

// FS is the cluster's file system as seen from one node: it writes files as
// replicated blocks and reads them back from whichever replica answers.
type FS struct {
	cfg FSConfig
	log *slog.Logger

	mu        sync.Mutex
	manifests map[ID]Manifest      // cache; manifests are immutable
	suspects  map[string]time.Time // nodes a block write failed on, and when

	// Writes counts what this node's writers did.
	Writes WriteStats
}

// NewFS returns a file system over cfg.
func NewFS(cfg FSConfig) *FS {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &FS{cfg: cfg, log: cfg.Logger, manifests: map[ID]Manifest{}, suspects: map[string]time.Time{}}
}

// Store is the local block store.
func (fs *FS) Store() *Store { return fs.cfg.Store }

// CreateOptions shape a put.
type CreateOptions struct {
	// BlockSize: default DefaultBlockSize, at least MinBlockSize.
	BlockSize int64
	// Replication: default 3, capped at the number of alive members.
	Replication int
	// Overwrite replaces an existing file.
	Overwrite bool
}

// DefaultReplication is the replication of files put without one.
const DefaultReplication = 3

// Create writes the stream r as the file p. Every block goes to its R ring
// owners in parallel (a failed owner is replaced by the next member on the
// ring: see writeBlock), and so does the manifest, from the moment the
// last block is cut (while the last blocks are still being written: a
// small file's one block and its manifest travel together); only once all
// of them are stored does the file record appear: a failed Create leaves
// nothing visible (its stray blocks and manifest are collected later). The
// returned FileInfo's Replication is what was applied, which is less than
// asked when the cluster is smaller.
func (fs *FS) Create(ctx context.Context, p string, r io.Reader, opts CreateOptions) (FileInfo, error) {
	p, err := CleanPath(p, false)
	if err != nil {
		return FileInfo{}, err
	}
	if opts.BlockSize == 0 {
		opts.BlockSize = DefaultBlockSize
	}
	if opts.BlockSize < MinBlockSize {
		return FileInfo{}, fmt.Errorf("block size %d is below the minimum %d", opts.BlockSize, MinBlockSize)
	}
	if opts.Replication == 0 {
		opts.Replication = DefaultReplication
	}
	if opts.Replication < 0 {
		return FileInfo{}, fmt.Errorf("replication %d: must be at least 1", opts.Replication)
	}
	if err := fs.checkCreate(p, opts.Overwrite); err != nil {
		return FileInfo{}, err
	}
	rg := fs.cfg.Ring()
	if rg.Len() == 0 {
		return FileInfo{}, errors.New("no alive members to store blocks on")
	}
	repl := min(opts.Replication, rg.Len())

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	res := fs.reserve(ctx, p, opts.Overwrite, cancel)
	defer res.release()
	type manifestDone struct {
		id  ID
		err error
	}
	var manifest chan manifestDone // nil until the last block is cut
	refs, size, err := fs.storeStream(ctx, p, 0, r, opts.BlockSize, repl, func(refs []BlockRef) {
		manifest = make(chan manifestDone, 1)
		go func() {
			id, err := fs.writeManifest(ctx, p, refs, repl, true)
			manifest <- manifestDone{id, err}
		}()
	})
	if err != nil {
		if manifest != nil {
			cancel(err)
			<-manifest
		}
		return FileInfo{}, fmt.Errorf("put %s: %w", p, err)
	}
	m := <-manifest
	if m.err != nil {
		if errors.As(m.err, new(*BlockWriteError)) {
			fs.Writes.Failed.Add(1) // the manifest alone failed the put
		}
		return FileInfo{}, m.err
	}
	return fs.commitRecord(ctx, p, m.id, len(refs), size, opts.BlockSize, repl, opts.Overwrite, res)
}

// storeStream cuts r into blocks of at most blockSize bytes (the Splitter's
// rule) and stores each on repl members through the write pipeline, several
// at once. The blocks are numbered from first in logs and errors about the
// file p. It returns them in order, and their total size. cut, if not nil,
// is called with them once the last block is cut, before the writes still
// in flight end (not when reading r or a write failed first).
func (fs *FS) storeStream(ctx context.Context, p string, first int, r io.Reader, blockSize int64, repl int, cut func([]BlockRef)) ([]BlockRef, int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sp := NewSplitter(fs.cfg.Store, r, blockSize)
	defer sp.Close()

	var (
		refs []BlockRef
		size int64
		wg   sync.WaitGroup
		sem  = make(chan struct{}, fs.cfg.Parallel)
	)
	for {
		c, err := sp.Next()
		if errors.Is(err, io.EOF) {
			if cut != nil && ctx.Err() == nil {
				cut(refs)
			}
			break
		}
		if err != nil {
			cancel(err)
			break
		}
		index := first + len(refs)
		refs = append(refs, BlockRef{ID: c.ID, Size: c.Size})
		size += c.Size
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			// Either case may have been taken: the chunk is not handed
			// on, so its spool file and descriptor go here.
			c.Discard()
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer c.Discard()
			if _, err := fs.writeBlock(ctx, blockWrite{file: p, index: index, id: c.ID, size: c.Size, want: repl, spool: c.File, sums: c.sums}, c.File); err != nil {
				cancel(err)
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, 0, err
	}
	return refs, size, nil
}

// commit writes the manifest of a file whose blocks are stored, then its
// record, through the path's reservation when it has one. The file appears
// only here.
func (fs *FS) commit(ctx context.Context, p string, refs []BlockRef, size, blockSize int64, repl int, overwrite bool, res *pendingReservation) (FileInfo, error) {
	mid, err := fs.writeManifest(ctx, p, refs, repl, false)
	if err != nil {
		return FileInfo{}, err
	}
	return fs.commitRecord(ctx, p, mid, len(refs), size, blockSize, repl, overwrite, res)
}

// writeManifest stores the manifest listing refs on repl members and
// returns its ID; early is blockWrite.early.
func (fs *FS) writeManifest(ctx context.Context, p string, refs []BlockRef, repl int, early bool) (ID, error) {
	mb, err := encodeManifest(Manifest{Blocks: refs})
	if err != nil {
		return ID{}, err
	}
	mid := Sum(mb)
	if _, err := fs.writeBlock(ctx, blockWrite{file: p, index: -1, id: mid, size: int64(len(mb)), want: repl, early: early}, bytes.NewReader(mb)); err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause // a refused reservation stopped the put
		}
		return ID{}, fmt.Errorf("put %s: %w", p, err)
	}
	return mid, nil
}

// commitRecord writes the record of a file whose blocks and manifest mid
// are stored, through the path's reservation when it has one.
func (fs *FS) commitRecord(ctx context.Context, p string, mid ID, blocks int, size, blockSize int64, repl int, overwrite bool, res *pendingReservation) (FileInfo, error) {
	info := FileInfo{
		Path:        p,
		Size:        size,
		ModTime:     fs.cfg.Now().UnixNano(),
		BlockSize:   blockSize,
		Replication: repl,
		Blocks:      blocks,
		Manifest:    mid,
		Prev:        fs.prevVersion(p),
	}
	rec, err := encodeFileInfo(info)
	if err != nil {
		return FileInfo{}, err
	}
	if err := fs.writeRecord(ctx, res, p, overwrite, rec); err != nil {
		return FileInfo{}, err
	}
	return info, nil
}

func (fs *FS) checkCreate(p string, overwrite bool) error {
	if _, err := fs.Stat(p); err == nil && !overwrite {
		return fmt.Errorf("%w: %s (use --force to replace it)", ErrExists, p)
	}
	if len(fs.cfg.Records.Scan(fileKey(p+"/"))) > 0 || fs.isMarkedDir(p) {
		return fmt.Errorf("%w: %s", ErrIsDir, p)
	}
	for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
		if _, ok := fs.cfg.Records.Get(fileKey(dir)); ok {
			return fmt.Errorf("%w: %s is a file, so %s cannot be below it", ErrExists, dir, p)
		}
	}
	return nil
}

// Stat returns the file record at p.
func (fs *FS) Stat(p string) (FileInfo, error) {
	p, err := CleanPath(p, false)
	if err != nil {
		return FileInfo{}, err
	}
	rec, ok := fs.cfg.Records.Get(fileKey(p))
	if !ok {
		if len(fs.cfg.Records.Scan(fileKey(p+"/"))) > 0 || fs.isMarkedDir(p) {
			return FileInfo{}, fmt.Errorf("%w: %s", ErrIsDir, p)
		}
		return FileInfo{}, fmt.Errorf("%w: %s", ErrNoFile, p)
	}
	return decodeFileInfo(rec.Value)
}

// Files returns every file, sorted by path.
func (fs *FS) Files() []FileInfo {
	var out []FileInfo
	for _, rec := range fs.cfg.Records.Scan(FileKeyPrefix) {
		f, err := decodeFileInfo(rec.Value)
		if err != nil {
			fs.log.Warn("skipping malformed file record", "key", rec.Key, "err", err)
			continue
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// List returns the entries directly under dir, or the file itself when dir
// names a file.
func (fs *FS) List(dir string) ([]Entry, error) {
	dir, err := CleanPath(dir, true)
	if err != nil {
		return nil, err
	}
	if dir != "/" {
		if f, err := fs.Stat(dir); err == nil {
			return []Entry{{Name: f.Path[strings.LastIndexByte(f.Path, '/')+1:], Path: f.Path, File: &f, Size: f.Size}}, nil
		}
	}
	byName := map[string]*Entry{}
	found := false
	for _, f := range fs.Files() {
		name, ok := childOf(dir, f.Path)
		if !ok {
			continue
		}
		found = true
		full := strings.TrimSuffix(dir, "/") + "/" + name
		e := byName[name]
		if e == nil {
			e = &Entry{Name: name, Path: full}
			byName[name] = e
		}
		if f.Path == full {
			f := f
			e.File = &f
			e.Size = f.Size
		} else {
			e.Dir = true
			e.Files++
			e.Size += f.Size
		}
	}
	for _, m := range fs.DirMarkersBelow(dir) {
		if m == dir {
			found = true
			continue
		}
		name, _ := childOf(dir, m)
		found = true
		if byName[name] == nil {
			byName[name] = &Entry{Name: name, Path: strings.TrimSuffix(dir, "/") + "/" + name, Dir: true}
		}
	}
	if !found && dir != "/" {
		return nil, fmt.Errorf("%w: %s", ErrNoFile, dir)
	}
	out := make([]Entry, 0, len(byName))
	for _, e := range byName {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ListPage returns at most limit entries directly under dir, starting at
// the cursor from ("" for the first page), and the cursor of the next
// page ("" when this one is the last). When dir names a file, the page is
// the file itself. Unlike List it reads only the page's records: a file
// on the page is one record decoded, a directory on the page is skipped
// over in the ordered keys, so a directory's entry carries neither its
// size nor its count of files. A page of a directory of a million files
// costs what a page of a small one does.
//
// Entries come in the order of their records' keys: by name, except that
// a directory sorts as its name followed by '/' ("a-b" before "a/").
func (fs *FS) ListPage(dir, from string, limit int) ([]Entry, string, error) {
	dir, err := CleanPath(dir, true)
	if err != nil {
		return nil, "", err
	}
	if limit < 1 {
		return nil, "", fmt.Errorf("list %s: a page of %d entries", dir, limit)
	}
	if dir != "/" {
		if f, err := fs.Stat(dir); err == nil {
			return []Entry{{Name: f.Path[strings.LastIndexByte(f.Path, '/')+1:], Path: f.Path, File: &f, Size: f.Size}}, "", nil
		}
	}
	base := strings.TrimSuffix(dir, "/") + "/"
	prefix := fileKey(base)
	// An entry's position: its name, and a directory's name with '/'.
	pos := func(e Entry) string {
		if e.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	var out []Entry
	next := ""
	at := from
	for {
		r, ok := fs.cfg.Records.First(prefix, prefix+at)
		if !ok {
			break
		}
		rest := r.Key[len(prefix):]
		if len(out) == limit {
			next = rest
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				next = rest[:i+1] // the directory's position
			}
			break
		}
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			name := rest[:i]
			out = append(out, Entry{Name: name, Path: base + name, Dir: true})
			at = name + "0" // '0' follows '/': past every key below name/
			continue
		}
		f, err := decodeFileInfo(r.Value)
		if err != nil {
			fs.log.Warn("skipping malformed file record", "key", r.Key, "err", err)
		} else {
			out = append(out, Entry{Name: rest, Path: f.Path, File: &f, Size: f.Size})
		}
		at = rest + "\x00"
	}
	// Directories that only a marker makes (empty ones) whose position
	// falls in this page's range.
	have := map[string]bool{}
	for _, e := range out {
		have[pos(e)] = true
	}
	added := false
	for _, m := range fs.DirMarkersBelow(dir) {
		name, ok := childOf(dir, m)
		p := name + "/"
		if !ok || have[p] || p < from || next != "" && p >= next {
			continue
		}
		have[p] = true
		out = append(out, Entry{Name: name, Path: base + name, Dir: true})
		added = true
	}
	if added {
		sort.Slice(out, func(i, j int) bool { return pos(out[i]) < pos(out[j]) })
		if len(out) > limit {
			next = pos(out[limit])
			out = out[:limit]
		}
	}
	if len(out) == 0 && from == "" && dir != "/" && !fs.isMarkedDir(dir) {
		return nil, "", fmt.Errorf("%w: %s", ErrNoFile, dir)
	}
	return out, next, nil
}

// Glob returns the files matching pattern (path.Match syntax), sorted; a
// pattern without metacharacters is the file itself.
func (fs *FS) Glob(pattern string) ([]FileInfo, error) {
	if !strings.ContainsAny(pattern, "*?[\\") {
		f, err := fs.Stat(pattern)
		if err != nil {
			return nil, err
		}
		return []FileInfo{f}, nil
	}
	if !strings.HasPrefix(pattern, "/") {
		return nil, fmt.Errorf("%w %q: must be absolute (start with /)", ErrBadPath, pattern)
	}
	var out []FileInfo
	for _, f := range fs.Files() {
		if matchGlob(pattern, f.Path) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: nothing matches %s", ErrNoFile, pattern)
	}
	return out, nil
}

// Remove deletes the file p, or with recursive every file below the
// directory p. Blocks are collected by the repair loop after a grace period.
// It returns the paths removed.
func (fs *FS) Remove(p string, recursive bool) ([]string, error) {
	p, err := CleanPath(p, recursive)
	if err != nil {
		return nil, err
	}
	if f, err := fs.Stat(p); err == nil {
		return []string{f.Path}, fs.cfg.Records.Delete(fileKey(f.Path))
	} else if !errors.Is(err, ErrIsDir) && !(recursive && p == "/") {
		return nil, err
	}
	markers := fs.DirMarkersBelow(p)
	if !recursive {
		// An empty directory goes without -r, as in HDFS.
		if len(markers) == 1 && markers[0] == p && len(fs.cfg.Records.Scan(fileKey(p+"/"))) == 0 {
			return []string{p}, fs.cfg.Records.Delete(dirKey(p))
		}
		return nil, fmt.Errorf("%w: %s (use -r to remove it and everything below)", ErrIsDir, p)
	}
	var removed []string
	for _, m := range markers {
		if err := fs.cfg.Records.Delete(dirKey(m)); err != nil {
			return removed, err
		}
		removed = append(removed, m)
	}
	for _, f := range fs.Files() {
		if _, ok := childOf(p, f.Path); ok {
			if err := fs.cfg.Records.Delete(fileKey(f.Path)); err != nil {
				return removed, err
			}
			removed = append(removed, f.Path)
		}
	}
	if len(removed) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoFile, p)
	}
	return removed, nil
}

// Manifest returns the file's block list, reading the manifest block from
// any replica.
func (fs *FS) Manifest(ctx context.Context, f FileInfo) (Manifest, error) {
	fs.mu.Lock()
	m, ok := fs.manifests[f.Manifest]
	fs.mu.Unlock()
	if ok {
		return m, nil
	}
	var buf bytes.Buffer
	if err := fs.readBlock(ctx, BlockRef{ID: f.Manifest, Size: -1}, f.Replication, &limitedWriter{w: &buf, n: maxManifest}); err != nil {
		return Manifest{}, fmt.Errorf("manifest of %s: %w", f.Path, err)
	}
	m, err := decodeManifest(buf.Bytes())
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest of %s: %w", f.Path, err)
	}
	fs.mu.Lock()
	if len(fs.manifests) > 4096 {
		clear(fs.manifests)
	}
	fs.manifests[f.Manifest] = m
	fs.mu.Unlock()
	return m, nil
}

type limitedWriter struct {
	w io.Writer
	n int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		return 0, errors.New("block larger than expected")
	}
	l.n -= int64(len(p))
	return l.w.Write(p)
}

// WriteTo streams the file's bytes to w, block by block, each verified.
func (fs *FS) WriteTo(ctx context.Context, f FileInfo, w io.Writer) (int64, error) {
	return fs.WriteToFrom(ctx, f, 0, w)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// candidates lists where to look for a block: here if we hold it, then its
// ring owners, then every other alive member.
func (fs *FS) candidates(id ID, repl int) []string {
	var out []string
	if fs.cfg.Store.Has(id) {
		out = append(out, fs.cfg.Self)
	}
	rg := fs.cfg.Ring()
	for _, o := range rg.Owners(id.String(), max(repl, 1)) {
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	for _, o := range rg.Members() {
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	for _, o := range fs.sources() {
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}

// sources is cfg.Sources, or none.
func (fs *FS) sources() []string {
	if fs.cfg.Sources == nil {
		return nil
	}
	return fs.cfg.Sources()
}

// readBlock writes block b's bytes to w, trying replicas in turn. A replica
// that fails mid-block is replaced by the next one from the same offset, so
// w sees every byte once; the whole is checked against the ID at the end.
// b.Size < 0 means "any size".
func (fs *FS) readBlock(ctx context.Context, b BlockRef, repl int, w io.Writer) error {
	return fs.readBlockFrom(ctx, b, repl, 0, w)
}

// readBlockFrom is readBlock from offset start; only a read of the whole
// block (start 0) can be checked against the ID here, but every holder
// checks each chunk of its copy against the block's CRC32C sums before
// serving a byte of it. The local copy is checked that way by Store.Open's
// reader and not hashed here.
func (fs *FS) readBlockFrom(ctx context.Context, b BlockRef, repl int, start int64, w io.Writer) error {
	w = destWriter{w}
	h := newHasher()
	whole := true // every byte went through h
	off := start
	var errs []error
	for _, node := range fs.candidates(b.ID, repl) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var r io.ReadCloser
		var n int64
		var err error
		if node == fs.cfg.Self {
			r, n, err = fs.cfg.Store.Open(b.ID, off)
		} else {
			r, n, err = fs.cfg.Client.Get(ctx, node, b.ID, off)
		}
		if err != nil {
			if !errors.Is(err, ErrNotFound) {
				errs = append(errs, err)
			}
			continue
		}
		if b.Size >= 0 && off+n != b.Size {
			r.Close()
			errs = append(errs, fmt.Errorf("%s holds %d bytes of block %s, want %d", node, off+n, b.ID.Short(), b.Size))
			continue
		}
		dst := io.MultiWriter(w, h)
		if node == fs.cfg.Self {
			// Open's reader checks each chunk of the local copy before
			// yielding it; no transfer lies between it and us.
			dst, whole = w, false
		}
		c, err := io.Copy(dst, r)
		r.Close()
		off += c
		if err != nil {
			var we *writeError
			if errors.As(err, &we) {
				return we.err
			}
			errs = append(errs, fmt.Errorf("block %s from %s: %w", b.ID.Short(), node, err))
			continue
		}
		if start == 0 && whole && idOf(h) != b.ID {
			return fmt.Errorf("%w: block %s did not match its ID after transfer", ErrCorrupt, b.ID.Short())
		}
		return nil
	}
	if len(errs) == 0 {
		return fmt.Errorf("%w: block %s is %w", ErrNotFound, b.ID.Short(), ErrUnavailable)
	}
	return fmt.Errorf("block %s: no replica could be read: %w", b.ID.Short(), errors.Join(errs...))
}

// writeError marks a failure of the destination, which no other replica
// can fix.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

type destWriter struct{ w io.Writer }

func (d destWriter) Write(p []byte) (int, error) {
	n, err := d.w.Write(p)
	if err != nil {
		err = &writeError{err}
	}
	return n, err
}

// OpenBlock opens block b of a file with replication repl from offset: the
// local copy when this node holds one (local is then true), else a stream
// from whichever replica answers. The caller must Close the reader.
func (fs *FS) OpenBlock(ctx context.Context, b BlockRef, repl int, offset int64) (r io.ReadCloser, local bool, err error) {
	if fs.cfg.Store.Has(b.ID) {
		r, _, err := fs.cfg.Store.Open(b.ID, offset)
		if err == nil {
			return r, true, nil
		}
		fs.log.Warn("local block unreadable, reading a replica", "block", b.ID.Short(), "err", err)
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(fs.readBlockFrom(ctx, b, repl, offset, pw))
	}()
	return pr, false, nil
}

// BlockLocation says where one block of a file is and should be.
type BlockLocation struct {
	ID       string   `json:"id"`
	Size     int64    `json:"size"`
	Manifest bool     `json:"manifest,omitempty"`
	Holders  []string `json:"holders"` // alive members that store it
	Owners   []string `json:"owners"`  // members the ring places it on, those low on disk last
}

// Locate reports, for the manifest and every block of f, which alive
// members hold it and which own it, as `hdfs fsck -files -blocks
// -locations` does.
func (fs *FS) Locate(ctx context.Context, f FileInfo) ([]BlockLocation, error) {
	m, err := fs.Manifest(ctx, f)
	if err != nil {
		return nil, err
	}
	rg := fs.cfg.Ring()
	repl := min(f.Replication, rg.Len())
	ids := []ID{f.Manifest}
	locs := []BlockLocation{{ID: f.Manifest.String(), Size: -1, Manifest: true}}
	for _, b := range m.Blocks {
		ids = append(ids, b.ID)
		locs = append(locs, BlockLocation{ID: b.ID.String(), Size: b.Size})
	}
	if n, err := fs.cfg.Store.Size(f.Manifest); err == nil {
		locs[0].Size = n
	}
	members := rg.Members()
	for _, o := range fs.sources() {
		if !slices.Contains(members, o) {
			members = append(members, o)
		}
	}
	have := make([][]bool, len(members))
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, node := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if node == fs.cfg.Self {
				have[i] = make([]bool, len(ids))
				for j, id := range ids {
					have[i][j] = fs.cfg.Store.Has(id)
				}
				return
			}
			have[i], errs[i] = fs.cfg.Client.HaveMany(ctx, node, ids)
		}()
	}
	wg.Wait()
	for i := range locs {
		locs[i].Owners = fs.owners(ids[i], repl) // members low on disk last
		locs[i].Holders = []string{}
		for j, node := range members {
			if errs[j] == nil && have[j][i] {
				locs[i].Holders = append(locs[i].Holders, node)
			}
		}
	}
	for j, err := range errs {
		if err != nil {
			fs.log.Warn("locate: member did not answer", "member", members[j], "err", err)
		}
	}
	return locs, nil
}

// PutBlob stores data as one content-addressed block on its repl ring
// owners (capped at the cluster size) and returns its ID. Nothing refers to
// the block until the caller records its ID somewhere the repair loop looks
// (a file's manifest, or RepairConfig.Referenced); until then it is
// collected after the grace period like the blocks of a failed put.
func (fs *FS) PutBlob(ctx context.Context, data []byte, repl int) (ID, error) {
	rg := fs.cfg.Ring()
	if rg.Len() == 0 {
		return ID{}, errors.New("no alive members to store blocks on")
	}
	repl = min(max(repl, 1), rg.Len())
	id := Sum(data)
	if _, err := fs.writeBlock(ctx, blockWrite{file: "a job spec", index: 0, id: id, size: int64(len(data)), want: repl}, bytes.NewReader(data)); err != nil {
		return ID{}, err
	}
	return id, nil
}

// ReadBlob returns the bytes of block id from any replica, verified against
// the ID, refusing a block longer than limit bytes before reading it all.
func (fs *FS) ReadBlob(ctx context.Context, id ID, repl int, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if err := fs.readBlock(ctx, BlockRef{ID: id, Size: -1}, repl, &limitedWriter{w: &buf, n: limit}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

package blockstore

import (
	"fmt"
	"path"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
)

// Directories are implied by the paths of the files below them. A directory
// made empty on purpose (WebHDFS MKDIRS) is a dir marker: a record at
// "dir/" + path whose value is its creation time. A marker is only ever
// needed for a directory no file lives below, but one that stays after files
// arrive is harmless: List, Stat and Remove treat a marked directory exactly
// as an implied one, and Remove -r and Rename take the markers below a path
// with its files.

// DirKeyPrefix starts the record key of every dir marker.
const DirKeyPrefix = "dir/"

func dirKey(p string) string { return DirKeyPrefix + p }

// dirMarker is a dir marker's record value.
type dirMarker struct {
	ModTime int64 `msgpack:"t"`
}

// isMarkedDir reports whether p has a marker, or a marker below it.
func (fs *FS) isMarkedDir(p string) bool {
	if _, ok := fs.cfg.Records.Get(dirKey(p)); ok {
		return true
	}
	return len(fs.cfg.Records.Scan(dirKey(strings.TrimSuffix(p, "/")+"/"))) > 0
}

// DirMarkersBelow returns the paths of the dir markers at p and below it (every
// marker for the root).
func (fs *FS) DirMarkersBelow(p string) []string {
	var out []string
	if _, ok := fs.cfg.Records.Get(dirKey(p)); ok && p != "/" {
		out = append(out, p)
	}
	prefix := strings.TrimSuffix(p, "/") + "/"
	for _, rec := range fs.cfg.Records.Scan(dirKey(prefix)) {
		out = append(out, strings.TrimPrefix(rec.Key, DirKeyPrefix))
	}
	return out
}

// MakeDir makes p a directory (and, implied, its parents). A directory
// already there, implied or marked, is not an error. It returns ErrExists
// when p or one of its parents is a file.
func (fs *FS) MakeDir(p string) error {
	p, err := CleanPath(p, true)
	if err != nil {
		return err
	}
	if p == "/" {
		return nil
	}
	for dir := p; dir != "/"; dir = path.Dir(dir) {
		if _, ok := fs.cfg.Records.Get(fileKey(dir)); ok {
			return fmt.Errorf("%w: %s is a file", ErrExists, dir)
		}
	}
	if fs.IsDir(p) {
		return nil
	}
	b, err := msgpack.Marshal(dirMarker{ModTime: fs.cfg.Now().UnixNano()})
	if err != nil {
		return err
	}
	if _, err := fs.cfg.Records.Put(dirKey(p), b); err != nil {
		return fmt.Errorf("mkdir %s: record: %w", p, err)
	}
	return nil
}

// IsDir reports whether p is a directory: the root, a marked directory, or
// one implied by a file below it.
func (fs *FS) IsDir(p string) bool {
	p, err := CleanPath(p, true)
	if err != nil {
		return false
	}
	if p == "/" || fs.isMarkedDir(p) {
		return true
	}
	return len(fs.cfg.Records.Scan(fileKey(p+"/"))) > 0
}

// DirModTime is the creation time of p's marker, or 0 when p has none.
func (fs *FS) DirModTime(p string) int64 {
	rec, ok := fs.cfg.Records.Get(dirKey(p))
	if !ok {
		return 0
	}
	var m dirMarker
	if msgpack.Unmarshal(rec.Value, &m) != nil {
		return 0
	}
	return m.ModTime
}

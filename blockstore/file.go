package blockstore

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"shoal.dev/shoal/gossip"
)

// Errors about files.
var (
	// ErrExists: a file is already at the path (put without overwrite).
	ErrExists = errors.New("file exists")
	// ErrNoFile: no file at the path.
	ErrNoFile = errors.New("no such file")
	// ErrBadPath: the path is not a valid Shoal path.
	ErrBadPath = errors.New("bad path")
	// ErrIsDir: the path names a directory where a file was expected.
	ErrIsDir = errors.New("is a directory")
)

// Path limits. A file's record key is FileKeyPrefix and its path, and a
// metadata key holds at most gossip.MaxKeyLen bytes, so a path holds at
// most MaxPathLen (507) bytes: a longer one is refused before any block is
// stored.
const (
	MaxPathLen = gossip.MaxKeyLen - len(FileKeyPrefix)
	MaxNameLen = 255
)

// CleanPath checks that p is an absolute Shoal path: it starts with "/", has
// no empty, "." or ".." component, no control characters, and stays within
// the length limits. It returns p without a trailing slash. The root "/" is
// valid only where dirOK.
func CleanPath(p string, dirOK bool) (string, error) {
	if p == "" {
		return "", fmt.Errorf("%w: empty path", ErrBadPath)
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%w %q: must be absolute (start with /)", ErrBadPath, p)
	}
	if len(p) > MaxPathLen {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrBadPath, MaxPathLen)
	}
	if p == "/" {
		if dirOK {
			return p, nil
		}
		return "", fmt.Errorf("%w %q: the root is a directory", ErrBadPath, p)
	}
	trimmed := p
	if dirOK {
		trimmed = strings.TrimSuffix(p, "/")
	}
	for _, c := range strings.Split(trimmed[1:], "/") {
		switch {
		case c == "":
			return "", fmt.Errorf("%w %q: empty component", ErrBadPath, p)
		case c == "." || c == "..":
			return "", fmt.Errorf("%w %q: %q is not allowed", ErrBadPath, p, c)
		case len(c) > MaxNameLen:
			return "", fmt.Errorf("%w: a name longer than %d bytes", ErrBadPath, MaxNameLen)
		}
		for _, r := range c {
			if r < 0x20 || r == 0x7f {
				return "", fmt.Errorf("%w %q: control character", ErrBadPath, p)
			}
		}
	}
	return trimmed, nil
}

// FileInfo is a file's record in the replicated metadata. It stays small
// whatever the file's size: the block list lives in the manifest block.
type FileInfo struct {
	Path        string `msgpack:"p" json:"path"`
	Size        int64  `msgpack:"s" json:"size"`
	ModTime     int64  `msgpack:"t" json:"mtime_unix_ns"`
	BlockSize   int64  `msgpack:"b" json:"block_size"`
	Replication int    `msgpack:"r" json:"replication"`
	Blocks      int    `msgpack:"n" json:"blocks"`
	Manifest    ID     `msgpack:"m" json:"manifest"`
	// Prev is the version of the record this write replaced, zero for a
	// new file: it tells an overwrite from a conflict (conflict.go).
	Prev gossip.Version `msgpack:"pv,omitempty" json:"-"`
}

// MTime is the file's modification time.
func (f FileInfo) MTime() time.Time { return time.Unix(0, f.ModTime) }

// FileKeyPrefix starts the record key of every file: "file/" and the path.
const FileKeyPrefix = "file/"

// fileKey is the record key of a file.
func fileKey(p string) string { return FileKeyPrefix + p }

func encodeFileInfo(f FileInfo) ([]byte, error) { return msgpack.Marshal(f) }

func decodeFileInfo(b []byte) (FileInfo, error) {
	var f FileInfo
	if err := msgpack.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("malformed file record: %w", err)
	}
	return f, nil
}

// BlockRef is one block of a file, in order.
type BlockRef struct {
	ID   ID    `msgpack:"i"`
	Size int64 `msgpack:"s"`
}

// Manifest is the ordered list of a file's blocks. It is stored as a block
// of its own, so it is replicated and verified like data.
type Manifest struct {
	Blocks []BlockRef `msgpack:"b"`
}

var manifestMagic = []byte("SHOALMF1")

// maxManifest bounds a manifest block: 1M blocks of a file.
const maxManifest = 64 << 20

func encodeManifest(m Manifest) ([]byte, error) {
	b, err := msgpack.Marshal(m)
	if err != nil {
		return nil, err
	}
	return append(bytes.Clone(manifestMagic), b...), nil
}

func decodeManifest(b []byte) (Manifest, error) {
	var m Manifest
	rest, ok := bytes.CutPrefix(b, manifestMagic)
	if !ok {
		return m, fmt.Errorf("not a manifest block")
	}
	if err := msgpack.Unmarshal(rest, &m); err != nil {
		return m, fmt.Errorf("malformed manifest: %w", err)
	}
	return m, nil
}

// Entry is one line of a directory listing: a file, or a directory implied
// by the paths below it.
type Entry struct {
	Name  string    `json:"name"`
	Path  string    `json:"path"`
	Dir   bool      `json:"dir"`
	File  *FileInfo `json:"file,omitempty"`
	Files int       `json:"files,omitempty"` // for a directory: files below it
	Size  int64     `json:"size"`            // for a directory: their total size
}

// childOf reports whether p is below dir, returning the first component
// under dir.
func childOf(dir, p string) (string, bool) {
	prefix := dir
	if prefix != "/" {
		prefix += "/"
	}
	rest, ok := strings.CutPrefix(p, prefix)
	if !ok || rest == "" {
		return "", false
	}
	first, _, _ := strings.Cut(rest, "/")
	return first, true
}

// matchGlob reports whether p matches pattern, with path.Match's syntax per
// component.
func matchGlob(pattern, p string) bool {
	ok, err := path.Match(pattern, p)
	return err == nil && ok
}

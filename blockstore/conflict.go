package blockstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"shoal.dev/shoal/gossip"
)

// Conflicting writes of one path. The metadata is AP: while the network is
// split, each half accepts puts, so the same path may be written on both
// sides. When the halves merge, the file records meet and the last writer
// wins: the record with the higher version (hybrid logical clock, then
// node name) is the file everyone reads. The other write is not dropped
// without a trace: a node that held it when the winner arrived keeps it as
// a file of its own, the conflict copy
//
//	DIR/NAME.conflict-NODE-20060102T150405.000Z
//
// (NODE wrote it, at that time), logs the conflict, and writes a conflict
// record, "conflict/" and the copy's path, that `shoal fs conflicts`
// lists. The copy references the losing blocks, so they stay replicated
// until a user removes it.
//
// A write conflicts with the record it replaced when it did not know it:
// every file record carries Prev, the version of the record its writer
// replaced (zero for a new file). An overwrite (--force) of the record in
// place is no conflict; two writes of the same path that did not see each
// other are. Two writes of the same bytes (the same manifest, as two halves
// that both ran a job write) are no conflict either, nor is a later write
// by the node that made the record it replaced here (a WebHDFS CREATE and
// its APPENDs reach other nodes as the first and last versions only).

// ConflictKeyPrefix starts the record key of every conflict: "conflict/"
// and the path of the conflict copy.
const ConflictKeyPrefix = "conflict/"

// Conflict is a conflict record: a write of Path that lost to another.
type Conflict struct {
	// Path is the file both wrote.
	Path string `msgpack:"p" json:"path"`
	// Copy is where the losing write is kept.
	Copy string `msgpack:"c" json:"copy"`
	// Winner and Loser are the two file records.
	Winner FileInfo `msgpack:"w" json:"winner"`
	Loser  FileInfo `msgpack:"l" json:"loser"`
	// WinnerVersion and LoserVersion are their record versions: the
	// writers are their Node.
	WinnerVersion gossip.Version `msgpack:"wv" json:"winner_version"`
	LoserVersion  gossip.Version `msgpack:"lv" json:"loser_version"`
	// DetectedBy is the node that wrote this record.
	DetectedBy string `msgpack:"d" json:"detected_by"`
}

// DetectConflict decides whether cur, a record that replaced old at the
// same key in this node's store, lost old without knowing it: both are
// live file records of different contents, and cur's writer replaced
// something other than old. It returns the conflict (Copy and DetectedBy
// unset) and true if so.
func DetectConflict(old, cur gossip.Record) (Conflict, bool) {
	if old.Key != cur.Key || !strings.HasPrefix(cur.Key, FileKeyPrefix) || old.Deleted || cur.Deleted {
		return Conflict{}, false
	}
	if cur.Version.Compare(old.Version) <= 0 {
		return Conflict{}, false
	}
	oi, err1 := decodeFileInfo(old.Value)
	ci, err2 := decodeFileInfo(cur.Value)
	if err1 != nil || err2 != nil {
		return Conflict{}, false
	}
	// A node's own writes are sequential: when it wrote cur it held old or
	// a record that replaced old, so it knew old even when this node never
	// saw the writes in between (an overwrite then appends, gossiped as the
	// first and the last).
	if ci.Prev == old.Version || cur.Version.Node == old.Version.Node || (ci.Manifest == oi.Manifest && ci.Size == oi.Size) {
		return Conflict{}, false
	}
	return Conflict{Path: ci.Path, Winner: ci, Loser: oi, WinnerVersion: cur.Version, LoserVersion: old.Version}, true
}

// ConflictCopyPath is where the losing write of p, made by node at the
// time of its version v, is kept. A name too long for the path or record
// key limits gives a path under /.conflicts named by a hash of p.
func ConflictCopyPath(p string, v gossip.Version) string {
	stamp := v.Time().UTC().Format("20060102T150405.000Z")
	c := fmt.Sprintf("%s.conflict-%s-%s", p, v.Node, stamp)
	if _, err := CleanPath(c, false); err == nil && len(ConflictKeyPrefix)+len(c) <= gossip.MaxKeyLen {
		return c
	}
	h := sha256.Sum256([]byte(p))
	return fmt.Sprintf("/.conflicts/%s-%s-%s", hex.EncodeToString(h[:8]), v.Node, stamp)
}

// ConflictWatcher finds conflicts among the changes of the file records
// (DetectConflict) and saves them. It keeps the last record it saw of
// every file, to compare the next one with.
type ConflictWatcher struct {
	fs      *FS
	changes <-chan gossip.Record
	seen    map[string]gossip.Record
}

// NewConflictWatcher reads the file records as they are now. changes is
// the channel of a gossip.Store Watch of FileKeyPrefix, opened before the
// call, so that no change falls between the two.
func (fs *FS) NewConflictWatcher(changes <-chan gossip.Record) *ConflictWatcher {
	w := &ConflictWatcher{fs: fs, changes: changes, seen: map[string]gossip.Record{}}
	for _, r := range fs.cfg.Records.Scan(FileKeyPrefix) {
		w.seen[r.Key] = r
	}
	return w
}

// Run applies the changes until ctx ends or the channel closes. One
// goroutine calls it.
func (w *ConflictWatcher) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r, ok := <-w.changes:
			if !ok {
				return
			}
			old, had := w.seen[r.Key]
			if had && old.Version.Compare(r.Version) >= 0 {
				continue // seen already (the first scan raced the watch)
			}
			if r.Deleted {
				delete(w.seen, r.Key)
			} else {
				w.seen[r.Key] = r
			}
			if !had {
				continue
			}
			if c, ok := DetectConflict(old, r); ok {
				w.fs.saveConflict(c)
			}
		}
	}
}

// saveConflict keeps the losing write as its conflict copy and writes the
// conflict record. Several nodes may do it for one conflict: they write
// the same values.
func (fs *FS) saveConflict(c Conflict) {
	c.Copy = ConflictCopyPath(c.Path, c.LoserVersion)
	c.DetectedBy = fs.cfg.Self
	fs.log.Warn("the same file was written on both sides of a network partition: the later write wins, the other is kept as a copy",
		"path", c.Path, "kept", c.WinnerVersion.Node, "kept_size", c.Winner.Size,
		"copy", c.Copy, "copy_writer", c.LoserVersion.Node, "copy_size", c.Loser.Size)
	cp := c.Loser
	cp.Path, cp.Prev = c.Copy, gossip.Version{}
	rec, err := encodeFileInfo(cp)
	if err == nil {
		if cur, ok := fs.cfg.Records.Get(fileKey(c.Copy)); !ok || !sameFile(cur.Value, cp) {
			_, err = fs.cfg.Records.Put(fileKey(c.Copy), rec)
		}
	}
	if err != nil {
		fs.log.Error("cannot keep the losing write of a conflict", "path", c.Path, "copy", c.Copy, "err", err)
		return
	}
	b, err := msgpack.Marshal(c)
	if err == nil {
		_, err = fs.cfg.Records.Put(ConflictKeyPrefix+c.Copy, b)
	}
	if err != nil {
		fs.log.Error("cannot record a conflict", "path", c.Path, "copy", c.Copy, "err", err)
	}
}

// sameFile reports whether the record value b is the file f.
func sameFile(b []byte, f FileInfo) bool {
	g, err := decodeFileInfo(b)
	return err == nil && g.Manifest == f.Manifest && g.Size == f.Size && g.Path == f.Path
}

// Conflicts lists the conflict records, sorted by path then copy.
func (fs *FS) Conflicts() []Conflict {
	var out []Conflict
	for _, r := range fs.cfg.Records.Scan(ConflictKeyPrefix) {
		var c Conflict
		if err := msgpack.Unmarshal(r.Value, &c); err != nil {
			fs.log.Warn("malformed conflict record", "key", r.Key, "err", err)
			continue
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Copy < out[j].Copy
	})
	return out
}

// prevVersion is the version of the live record at p, zero if none: what
// a write of p replaces.
func (fs *FS) prevVersion(p string) gossip.Version {
	if r, ok := fs.cfg.Records.Get(fileKey(p)); ok {
		return r.Version
	}
	return gossip.Version{}
}

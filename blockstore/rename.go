package blockstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// Rename moves the file or directory src to dst, as HDFS's rename does:
// when dst is an existing directory, src moves into it (dst/base(src)).
// Blocks and manifests do not move: a file's record is written at its new
// path, then the old one is deleted, so a reader may for a moment see both
// names, never neither. A directory moves record by record, files and dir
// markers alike. It returns the final destination path.
//
// A file's new path is created as a put without overwrite creates it:
// through a reservation of the path (the FS's Reserver, when it has one),
// so that of two renames (or a rename and a put) racing for one path
// exactly one writes it; the other fails with ErrExists and its source
// stays where it was.
//
// Errors: ErrNoFile when src does not exist; ErrExists when the
// destination is taken, or dst is below src; ErrBadPath for the root or a
// bad path.
func (fs *FS) Rename(ctx context.Context, src, dst string) (string, error) {
	src, err := CleanPath(src, false)
	if err != nil {
		return "", err
	}
	dst, err = CleanPath(dst, false)
	if err != nil {
		return "", err
	}
	srcFile, ferr := fs.Stat(src)
	srcIsFile := ferr == nil
	if !srcIsFile && !fs.IsDir(src) {
		return "", fmt.Errorf("%w: %s", ErrNoFile, src)
	}
	if fs.IsDir(dst) {
		dst = strings.TrimSuffix(dst, "/") + "/" + path.Base(src)
	}
	if dst == src {
		return dst, nil
	}
	if strings.HasPrefix(dst, src+"/") {
		return "", fmt.Errorf("%w: cannot move %s below itself (%s)", ErrExists, src, dst)
	}
	if _, err := fs.Stat(dst); err == nil || fs.IsDir(dst) {
		return "", fmt.Errorf("%w: %s", ErrExists, dst)
	}
	for dir := path.Dir(dst); dir != "/"; dir = path.Dir(dir) {
		if _, ok := fs.cfg.Records.Get(fileKey(dir)); ok {
			return "", fmt.Errorf("%w: %s is a file, so %s cannot be below it", ErrExists, dir, dst)
		}
	}
	if srcIsFile {
		return dst, fs.moveFile(ctx, srcFile, dst)
	}
	for _, f := range fs.Files() {
		if strings.HasPrefix(f.Path, src+"/") {
			if err := fs.moveFile(ctx, f, dst+strings.TrimPrefix(f.Path, src)); err != nil {
				return "", err
			}
		}
	}
	for _, m := range fs.DirMarkersBelow(src) {
		rec, ok := fs.cfg.Records.Get(dirKey(m))
		if !ok {
			continue
		}
		if _, err := fs.cfg.Records.Put(dirKey(dst+strings.TrimPrefix(m, src)), rec.Value); err != nil {
			return "", fmt.Errorf("rename %s: record: %w", m, err)
		}
		if err := fs.cfg.Records.Delete(dirKey(m)); err != nil {
			return "", fmt.Errorf("rename %s: record: %w", m, err)
		}
	}
	return dst, nil
}

// moveFile writes f's record at dst, through a reservation of dst when the
// FS has a Reserver, then deletes it at its old path.
func (fs *FS) moveFile(ctx context.Context, f FileInfo, dst string) error {
	src := f.Path
	f.Path, f.Prev = dst, fs.prevVersion(dst)
	rec, err := encodeFileInfo(f)
	if err != nil {
		return err
	}
	if fs.cfg.Reserver != nil {
		res, err := fs.cfg.Reserver.Reserve(ctx, dst)
		if err != nil {
			return fmt.Errorf("rename %s: %w", src, err)
		}
		_, err = res.Commit(ctx, fileKey(dst), rec)
		res.Release()
		if err != nil {
			return fmt.Errorf("rename %s: %w", src, err)
		}
	} else if _, err := fs.cfg.Records.Put(fileKey(dst), rec); err != nil {
		return fmt.Errorf("rename %s: record: %w", src, err)
	}
	if err := fs.cfg.Records.Delete(fileKey(src)); err != nil {
		return fmt.Errorf("rename %s: record: %w", src, err)
	}
	return nil
}

// ErrChanged: the file changed under an append; the caller may try again.
var ErrChanged = errors.New("file changed during the append")

// Append adds the bytes of r at the end of the file p. Files stay
// immutable: the new bytes become new blocks (cut with the file's block
// size, stored with its replication), and a new manifest lists the file's
// existing blocks followed by them; the record then points at it. An empty
// r changes nothing. It returns ErrNoFile when p does not exist and
// ErrChanged when p was replaced meanwhile (two appends racing: one wins).
func (fs *FS) Append(ctx context.Context, p string, r io.Reader) (FileInfo, error) {
	f, err := fs.Stat(p)
	if err != nil {
		return FileInfo{}, err
	}
	m, err := fs.Manifest(ctx, f)
	if err != nil {
		return FileInfo{}, err
	}
	rg := fs.cfg.Ring()
	if rg.Len() == 0 {
		return FileInfo{}, errors.New("no alive members to store blocks on")
	}
	repl := max(min(f.Replication, rg.Len()), 1)
	refs, size, err := fs.storeStream(ctx, f.Path, len(m.Blocks), r, f.BlockSize, repl, nil)
	if err != nil {
		return FileInfo{}, fmt.Errorf("append to %s: %w", f.Path, err)
	}
	if len(refs) == 0 {
		return f, nil
	}
	if len(m.Blocks)+len(refs) > MaxFileBlocks {
		return FileInfo{}, fmt.Errorf("append to %s: %d blocks: a file has at most %d", f.Path, len(m.Blocks)+len(refs), MaxFileBlocks)
	}
	all := append(append(make([]BlockRef, 0, len(m.Blocks)+len(refs)), m.Blocks...), refs...)
	if now, err := fs.Stat(f.Path); err != nil || now.Manifest != f.Manifest {
		return FileInfo{}, fmt.Errorf("%w: %s", ErrChanged, f.Path)
	}
	return fs.commit(ctx, f.Path, all, f.Size+size, f.BlockSize, f.Replication, true, nil)
}

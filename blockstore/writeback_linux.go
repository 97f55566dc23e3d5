package blockstore

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback starts writing f's dirty pages to disk and returns
// without waiting for them (sync_file_range with SYNC_FILE_RANGE_WRITE,
// the whole file: pages already being written are skipped). It is
// advice: a failure here is ignored, and the fsync that makes the block
// durable reports any error of the disk.
func startWriteback(f *os.File) {
	_ = unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}

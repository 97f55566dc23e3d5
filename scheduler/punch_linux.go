package scheduler

import (
	"os"
	"syscall"
)

// punchHole frees the disk space and the page-cache pages of n bytes of f
// from off, keeping its size (fallocate with FALLOC_FL_PUNCH_HOLE). It is
// advice: a file system without hole punching keeps the bytes.
func punchHole(f *os.File, off, n int64) {
	const keepSize, punch = 0x1, 0x2 // FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE
	_ = syscall.Fallocate(int(f.Fd()), keepSize|punch, off, n)
}

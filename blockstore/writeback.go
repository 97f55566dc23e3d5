package blockstore

import (
	"io"
	"os"
)

// writebackEvery is how many bytes a spool takes between two starts of
// its write-back (see spoolWriter).
const writebackEvery = 8 << 20

// spoolWriter writes a spool file and, every writebackEvery bytes, asks
// the kernel to start writing its dirty pages to disk without waiting
// for them (startWriteback). A block is fsynced before it is
// acknowledged; without this, a 64 MB block's pages all wait in memory
// for that fsync (a machine with gigabytes of memory starts writing them
// back only much later), so the sender's stream stood idle while this
// disk wrote the whole block. With it the disk writes while the bytes
// arrive, and the fsync waits for the last few MiB only.
type spoolWriter struct {
	w     io.Writer // the guarded writer of f
	f     *os.File
	since int64            // bytes written since write-back was last started
	start func(f *os.File) // Store.startWriteback
}

func (s *spoolWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.since += int64(n)
	if err == nil && s.since >= writebackEvery {
		s.since = 0
		s.start(s.f)
	}
	return n, err
}

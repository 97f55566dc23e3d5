//go:build !linux

package scheduler

import "os"

// punchHole does nothing here: only Linux frees a file's range in place.
func punchHole(f *os.File, off, n int64) {}

//go:build !linux

package blockstore

import "os"

// startWriteback does nothing here: only Linux has sync_file_range. The
// fsync that ends a block writes all of it.
func startWriteback(*os.File) {}

//go:build !linux

package shuffle

// adviseHuge does nothing: transparent huge pages are Linux's.
func adviseHuge([]byte) {}

//go:build !linux

package shuffle

// adviseHuge does nothing: transparent huge pages are Linux's.
func adviseHuge([]byte) {}

// mapMem maps nothing elsewhere: sort buffers come from the heap.
func mapMem(int) []byte { return nil }

func unmapMem([]byte) {}

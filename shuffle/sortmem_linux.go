package shuffle

import "syscall"

// mapMem maps n zeroed bytes outside Go's heap, advised to be backed by
// huge pages before anything touches them; nil if the mapping fails.
func mapMem(n int) []byte {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil
	}
	adviseHuge(b)
	return b
}

// unmapMem unmaps what mapMem returned.
func unmapMem(b []byte) { _ = syscall.Munmap(b) }

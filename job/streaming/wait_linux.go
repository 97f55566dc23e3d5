package streaming

import (
	"syscall"
	"unsafe"
)

// pPID is waitid's P_PID: wait for the process whose ID is given.
const pPID = 1

// waitExited blocks until the child pid has exited, without reaping it,
// and reports whether it could: until reaped, the child's ID, which is also
// its process group's, cannot be reused, so killing the group is safe.
func waitExited(pid int) bool {
	var siginfo [16]uint64 // a siginfo_t: 128 bytes; its contents are not needed
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&siginfo[0])), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		switch errno {
		case 0:
			return true
		case syscall.EINTR:
		default:
			return false // Wait reports the trouble
		}
	}
}

//go:build !linux

package worker

import "syscall"

// sysProcAttr puts a worker in a process group of its own; it dies with
// its agent through the lifeline alone.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

//go:build !linux

package streaming

import "syscall"

// sysProcAttr puts a child in a process group of its own, run as cred
// when set. There is no parent-death signal outside Linux; the lifeline
// watchdog still kills the group when the agent dies.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}

// sweep finds nothing without /proc.
func sweep(map[int]bool, string) []int { return nil }

package worker

import "syscall"

// sysProcAttr puts a worker in a process group of its own and has the
// kernel kill it when the thread that started it dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

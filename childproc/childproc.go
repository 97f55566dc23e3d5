// Package childproc starts child processes so that Linux's parent-death
// signal reaches them when the agent dies.
//
// Linux sends a child its parent-death signal (SysProcAttr.Pdeathsig) when
// the thread that forked it exits, not when the process does, and Go may
// end a thread that ran a locked goroutine. Start therefore forks every
// child from one goroutine locked to its OS thread for the life of the
// process. A thread is a process resource, so this is the one place that
// does it: streaming's children and shipped jobs' workers both start here.
package childproc

import (
	"os/exec"
	"runtime"
	"sync"
)

// Start starts cmd (as cmd.Start does) from the process's one forking
// thread.
func Start(cmd *exec.Cmd) error {
	starter.once.Do(func() {
		starter.reqs = make(chan startReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range starter.reqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	starter.reqs <- startReq{cmd: cmd, done: done}
	return <-done
}

var starter struct {
	once sync.Once
	reqs chan startReq
}

type startReq struct {
	cmd  *exec.Cmd
	done chan error
}

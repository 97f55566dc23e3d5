package streaming

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// sysProcAttr puts a child in a process group of its own, has the kernel
// kill it when the thread that started it dies, and runs it as cred when
// set.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
}

// sweep kills every process whose environment holds the entry mark, and
// the groups in listed that hold such a process.
func sweep(listed map[int]bool, mark string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var killed []int
	groups := map[int]bool{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !hasEntry(env, mark) {
			continue
		}
		if g, err := syscall.Getpgid(pid); err == nil && listed[g] {
			groups[g] = true
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = append(killed, pid)
		}
	}
	for g := range groups {
		_ = syscall.Kill(-g, syscall.SIGKILL)
	}
	return killed
}

// hasEntry reports whether the NUL-separated environment env holds entry.
func hasEntry(env []byte, entry string) bool {
	for _, kv := range bytes.Split(env, []byte{0}) {
		if string(kv) == entry {
			return true
		}
	}
	return false
}

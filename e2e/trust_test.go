package e2e

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/secret"
)

// agentProc is one agent started by a test, not by the script.
type agentProc struct {
	cmd  *exec.Cmd
	dir  string
	url  string
	logs *lockedBuffer
}

// startAgent runs `shoal agent` on loopback with a data dir of its own,
// the extra args and environment, and waits for its agent.json.
func startAgent(t *testing.T, env []string, args ...string) *agentProc {
	t.Helper()
	dir := t.TempDir()
	full := append([]string{"agent", "--name", "solo", "--data-dir", dir, "--bind", "127.0.0.1:0", "--http", "127.0.0.1:0", "--fast-gossip"}, args...)
	cmd := exec.Command(shoalBin, full...)
	cmd.Env = append(cleanEnv(), env...)
	a := &agentProc{cmd: cmd, dir: dir, logs: &lockedBuffer{}}
	cmd.Stdout, cmd.Stderr = a.logs, a.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killOnTimeout(t, cmd)
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	clustertest.Eventually(t, 30*time.Second, func() error {
		if cmd.ProcessState != nil {
			t.Fatalf("agent exited: %s", a.logs)
		}
		_, err := os.Stat(filepath.Join(dir, "agent.json"))
		return err
	})
	a.url = readField(t, filepath.Join(dir, "agent.json"), "http")
	return a
}

// cli runs a client command against the agent with the secret in env.
func (a *agentProc) cli(t *testing.T, sec secret.Secret, args ...string) string {
	t.Helper()
	r := shoal(t, []string{"SHOAL_ADDR=" + a.url, "SHOAL_SECRET=" + sec.String()}, args...)
	if r.code != 0 {
		t.Fatalf("shoal %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// snoop is a mapper that reads what it can of its agent, /proc/$PPID's
// command line and environment and the secret file, and writes it base64
// on one line.
func snoop(secretFile string) string {
	return `cat >/dev/null; { id -u; cat /proc/$PPID/cmdline; echo; cat /proc/$PPID/environ; echo; cat ` + secretFile + `; } 2>/dev/null | base64 -w0; echo`
}

func snooped(t *testing.T, out string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("mapper output %q: %v", out, err)
	}
	return string(b)
}

// TestTaskCannotReachSecret: a streaming mapper that reads its agent's
// /proc/PID/cmdline and environ and the secret file finds no secret: the
// agent passes the secret on to a fresh image of itself and drops it, and
// the file's path, from its command line and environment; and with
// --task-user the file is closed to the task.
func TestTaskCannotReachSecret(t *testing.T) {
	sec := secret.Generate()
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte(sec.String()+"\n"), 0o600)

	t.Run("environment", func(t *testing.T) {
		a := startAgent(t, []string{"SHOAL_SECRET=" + sec.String()})
		a.cli(t, sec, "fs", "put", secretFile, "/in") // any one-line input
		a.cli(t, sec, "streaming", "-input", "/in", "-output", "/out", "-reducer", "NONE", "-mapper", snoop("/nonexistent"))
		got := snooped(t, a.cli(t, sec, "fs", "cat", "/out/part-m-00000"))
		if !strings.Contains(got, "--data-dir") || !strings.Contains(got, "PATH=") {
			t.Fatalf("the mapper did not read its agent's /proc (is $PPID the agent?): %q", got)
		}
		if strings.Contains(got, sec.String()) {
			t.Fatalf("the mapper found the secret in its agent's /proc: %q", got)
		}
	})
	t.Run("file and task user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("--task-user needs root")
		}
		nobody, err := user.Lookup("nobody")
		if err != nil {
			t.Skip("no user nobody")
		}
		a := startAgent(t, nil, "--secret-file", secretFile, "--task-user", "nobody")
		a.cli(t, sec, "fs", "put", secretFile, "/in")
		a.cli(t, sec, "streaming", "-input", "/in", "-output", "/out", "-reducer", "NONE", "-mapper", snoop(secretFile))
		got := snooped(t, a.cli(t, sec, "fs", "cat", "/out/part-m-00000"))
		if !strings.HasPrefix(got, nobody.Uid+"\n") || !strings.Contains(got, "--data-dir") {
			t.Fatalf("the mapper did not run as nobody, or could not read its agent's command line: %q", got)
		}
		if strings.Contains(got, sec.String()) || strings.Contains(got, secretFile) {
			t.Fatalf("the mapper found the secret or its file: %q", got)
		}
		if !strings.Contains(a.logs.String(), "running as root") {
			t.Fatalf("no warning about root in the agent's log:\n%s", a.logs)
		}
	})
	t.Run("open secret file refused", func(t *testing.T) {
		open := filepath.Join(t.TempDir(), "secret")
		os.WriteFile(open, []byte(sec.String()+"\n"), 0o644)
		r := shoal(t, nil, "agent", "--data-dir", t.TempDir(), "--bind", "127.0.0.1:0", "--http", "127.0.0.1:0", "--secret-file", open)
		if r.code == 0 || !strings.Contains(r.stderr, "chmod 600") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Fatalf("agent with a 0644 secret file: exit %d, %q", r.code, r.stderr)
		}
	})
}

// procsWithArgs lists the processes whose command line is exactly args.
func procsWithArgs(args string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ") == args {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestChildrenDieWithAgent: kill -9 of an agent running streaming tasks
// leaves no task process behind, grandchildren and processes that left
// their parent included.
func TestChildrenDieWithAgent(t *testing.T) {
	sec := secret.Generate()
	a := startAgent(t, []string{"SHOAL_SECRET=" + sec.String()})
	in := filepath.Join(t.TempDir(), "in")
	os.WriteFile(in, []byte("a\nb\n"), 0o644)
	a.cli(t, sec, "fs", "put", in, "/in")
	const sleeper = "sleep 9871"
	t.Cleanup(func() { // should the test fail
		for _, pid := range procsWithArgs(sleeper) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	a.cli(t, sec, "streaming", "-input", "/in", "-output", "/out", "-detach",
		"-mapper", "(sleep 9871 &); sleep 9871 & cat; wait", "-reducer", "sleep 9871; cat")
	clustertest.Eventually(t, 30*time.Second, func() error {
		if n := len(procsWithArgs(sleeper)); n < 2 {
			return fmt.Errorf("%d task processes running, want 2", n)
		}
		return nil
	})
	a.cmd.Process.Signal(syscall.SIGKILL)
	a.cmd.Wait()
	clustertest.Eventually(t, 10*time.Second, func() error {
		if pids := procsWithArgs(sleeper); len(pids) > 0 {
			return fmt.Errorf("task processes %v outlive their agent", pids)
		}
		return nil
	})
}

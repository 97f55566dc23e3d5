package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// rawGo are texts of Go's and the transport's that a user must never read.
var rawGo = []string{
	"context deadline exceeded", "context canceled", "EOF", "connection reset by peer",
	"i/o timeout", "broken pipe", "use of closed network connection", "http: ", "dial tcp",
	"read tcp", "write tcp", "goroutine ", "panic:", "runtime error", "msgpack:", "json: ",
	"invalid character", "unexpected end of JSON", "stream reset", "%!",
}

// checkWords fails when stderr of a failed command is not one `shoal: `
// line in Shoal's words.
func checkWords(t *testing.T, what string, r result) {
	t.Helper()
	if r.code == 0 {
		t.Errorf("%s: succeeded, want a failure", what)
		return
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "shoal: ") {
		t.Errorf("%s: stderr does not end with one `shoal: ` line: %q", what, r.stderr)
	}
	for _, raw := range rawGo {
		if strings.Contains(r.stderr, raw) {
			t.Errorf("%s: stderr shows %q: %q", what, raw, r.stderr)
		}
	}
}

// fakeAgents starts listeners that fail the ways a broken or wrong peer
// does: closing at once, resetting, answering something that is not HTTP.
func fakeAgents(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	serve := func(name string, handle func(net.Conn)) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go handle(c)
			}
		}()
		out[name] = "http://" + ln.Addr().String()
	}
	serve("hangs up", func(c net.Conn) {
		buf := make([]byte, 1)
		c.Read(buf)
		c.Close()
	})
	serve("resets", func(c net.Conn) {
		buf := make([]byte, 1)
		c.Read(buf)
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	serve("not http", func(c net.Conn) {
		buf := make([]byte, 4096)
		c.Read(buf)
		c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
		c.Close()
	})
	serve("cut answer", func(c net.Conn) {
		buf := make([]byte, 4096)
		c.Read(buf)
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"na"))
		c.Close()
	})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	out["nothing listens"] = "http://" + ln.Addr().String()
	ln.Close()
	return out
}

// TestNoRawErrors drives every client command's failure paths, against a
// live cluster and against agents that are absent or broken, and fails on
// Go's own error texts in what the user reads.
func TestNoRawErrors(t *testing.T) {
	e, st := startFSEnv(t, 2)
	url := st["node1"][1]
	local := filepath.Join(e.dir, "local.txt")
	os.WriteFile(local, []byte("one\ntwo\n"), 0o644)
	e.mustCLI(url, "fs", "put", local, "/f")

	// Against the live cluster: what the user got wrong.
	live := [][]string{
		{"members", "--wait", "5", "--timeout", "1s"},
		{"ring", "owners", "k", "-n", "0"},
		{"p2p", "ping", "nosuchnode"},
		{"fs", "put", filepath.Join(e.dir, "missing"), "/g"},
		{"fs", "put", local, "/f"},
		{"fs", "put", local, "relative"},
		{"fs", "get", "/missing", filepath.Join(e.dir, "out")},
		{"fs", "cat", "/missing"},
		{"fs", "getmerge", "/nodir", filepath.Join(e.dir, "merged")},
		{"fs", "ls", "/nodir/x"},
		{"fs", "rm", "/missing"},
		{"fs", "stat", "/missing"},
		{"job", "run", "nosuchjob", "--input", "/f", "--output", "/o1"},
		{"job", "run", "wordcount", "--input", "/missing", "--output", "/o2"},
		{"job", "run", "teravalidate", "--input", "/f", "--output", "/o3"},
		{"job", "status", "job-nosuch"},
		{"job", "wait", "job-nosuch"},
		{"job", "kill", "job-nosuch"},
		{"job", "counters", "job-nosuch"},
		{"streaming", "-input", "/missing", "-output", "/o4", "-mapper", "cat"},
		{"streaming", "-input", "/f", "-output", "/o5", "-mapper", "exit 3", "-max-attempts", "1"},
	}
	for _, args := range live {
		checkWords(t, strings.Join(args, " "), e.cli(url, args...))
	}
	// Wrong secret.
	other := filepath.Join(e.dir, "other-secret")
	os.WriteFile(other, []byte(strings.Repeat("A", 43)+"=\n"), 0o600)
	checkWords(t, "members with another secret", shoal(t, nil, "members", "--addr", url, "--secret-file", other))

	// Against agents that are not there or misbehave, every command.
	every := [][]string{
		{"members"}, {"members", "--wait", "2", "--timeout", "1s"}, {"ring", "owners", "k"}, {"p2p", "ping", "node1"},
		{"fs", "put", local, "/x"}, {"fs", "get", "/f", "-"}, {"fs", "cat", "/f"}, {"fs", "getmerge", "/", filepath.Join(e.dir, "m")},
		{"fs", "ls"}, {"fs", "rm", "/f"}, {"fs", "stat", "/f"},
		{"job", "run", "wordcount", "--input", "/f", "--output", "/o"}, {"job", "status", "j"}, {"job", "wait", "j"},
		{"job", "kill", "j"}, {"job", "counters", "j"}, {"job", "list"},
		{"streaming", "-input", "/f", "-output", "/o", "-mapper", "cat"},
	}
	for name, addr := range fakeAgents(t) {
		for _, args := range every {
			r := shoal(t, []string{"SHOAL_SECRET_FILE=" + e.lc.secretFile()}, append(args, "--addr", addr)...)
			checkWords(t, name+": "+strings.Join(args, " "), r)
		}
	}
	// Local mistakes.
	for _, args := range [][]string{{"gen", "text", "--bytes", "lots"}, {"keygen", "extra"}, {"agent", "--http", "nonsense"}, {"bogus"}} {
		checkWords(t, strings.Join(args, " "), shoal(t, nil, args...))
	}
}

// TestMembersWaitSaysHowMany: waiting for more members than there are
// says how many of the wanted are alive, and what it waited for.
func TestMembersWaitSaysHowMany(t *testing.T) {
	e, st := startFSEnv(t, 2)
	r := e.cli(st["node1"][1], "members", "--wait", "5", "--timeout", "2s")
	checkWords(t, "members --wait 5", r)
	if !strings.Contains(r.stderr, "only 2 of 5 are alive") || !strings.Contains(r.stderr, "waited 2s for 5 alive members") {
		t.Fatalf("stderr %q", r.stderr)
	}
}

// TestTeraChecksumAsPrinted: teragen's CHECKSUM pasted exactly as printed
// validates; a wrong one fails after one attempt, both values in hex.
func TestTeraChecksumAsPrinted(t *testing.T) {
	e, st := startFSEnv(t, 2)
	url := st["node1"][1]
	gen := e.mustCLI(url, "job", "run", "teragen", "--param", "rows=3000", "--output", "/tg", "--replication", "1")
	m := regexp.MustCompile(`(?m)^\s*CHECKSUM\s+(\S+)\s*$`).FindStringSubmatch(gen)
	if m == nil {
		t.Fatalf("no CHECKSUM in teragen's output:\n%s", gen)
	}
	sum := m[1]
	if !regexp.MustCompile(`^[0-9a-f]+$`).MatchString(sum) {
		t.Fatalf("CHECKSUM %q is not hex", sum)
	}
	e.mustCLI(url, "job", "run", "terasort", "--input", "/tg", "--output", "/ts", "--reducers", "2", "--replication", "1")
	e.mustCLI(url, "job", "run", "teravalidate", "--input", "/ts", "--output", "/tv", "--param", "checksum="+sum)

	wrong := "1" + sum[1:]
	if wrong == sum {
		wrong = "2" + sum[1:]
	}
	r := e.cli(url, "job", "run", "teravalidate", "--input", "/ts", "--output", "/tv2", "--param", "checksum="+wrong)
	checkWords(t, "teravalidate with a wrong checksum", r)
	if !strings.Contains(r.stderr, fmt.Sprintf("checksum %s, want %s", sum, strings.TrimLeft(wrong, "0"))) {
		t.Fatalf("stderr %q does not show both checksums in hex", r.stderr)
	}
	fr := regexp.MustCompile(`(?m)^\s*NUM_FAILED_REDUCES\s+(\d+)`).FindStringSubmatch(r.stdout)
	if fr == nil || fr[1] != "1" {
		t.Fatalf("NUM_FAILED_REDUCES %v, want 1 (no retry):\n%s", fr, r.stdout)
	}
}

// TestLocalClusterUsedByDefault: with neither an address nor a secret
// given, client commands use the running local cluster in ./.cluster (or
// SHOAL_CLUSTER_DIR), and say so once.
func TestLocalClusterUsedByDefault(t *testing.T) {
	e, st := startFSEnv(t, 2)
	cwd := t.TempDir()
	if err := os.Symlink(e.lc.dir, filepath.Join(cwd, ".cluster")); err != nil {
		t.Fatal(err)
	}
	for name, env := range map[string][]string{"./.cluster": nil, "SHOAL_CLUSTER_DIR": {"SHOAL_CLUSTER_DIR=" + e.lc.dir}} {
		cmd := exec.Command(shoalBin, "members")
		cmd.Dir = cwd
		if env != nil {
			cmd.Dir = t.TempDir()
		}
		cmd.Env = append(cleanEnv(), env...)
		r := runCmd(t, cmd)
		if r.code != 0 || !strings.Contains(r.stdout, "node1") || !strings.Contains(r.stdout, "node2") {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q", name, r.code, r.stdout, r.stderr)
		}
		if strings.Count(r.stderr, "using the local cluster") != 1 {
			t.Fatalf("%s: stderr %q, want one note", name, r.stderr)
		}
	}
	// An explicit address wins, and no note.
	cmd := exec.Command(shoalBin, "members", "--addr", st["node2"][1], "--secret-file", e.lc.secretFile())
	cmd.Dir, cmd.Env = cwd, cleanEnv()
	if r := runCmd(t, cmd); r.code != 0 || strings.Contains(r.stderr, "local cluster") {
		t.Fatalf("explicit address: exit %d, stderr %q", r.code, r.stderr)
	}
	// A stopped cluster is not used.
	e.lc.script("stop")
	cmd = exec.Command(shoalBin, "members")
	cmd.Dir, cmd.Env = cwd, cleanEnv()
	if r := runCmd(t, cmd); r.code == 0 || strings.Contains(r.stderr, "local cluster") {
		t.Fatalf("stopped cluster: exit %d, stderr %q", r.code, r.stderr)
	}
}

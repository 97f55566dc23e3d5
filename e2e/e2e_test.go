package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"shoal.dev/shoal/client"
	"strings"
	"syscall"
	"testing"
	"time"

	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/secret"
)

// binEnv names a shoal binary the tests and benchmarks run instead of one
// built from this tree.
const binEnv = "SHOAL_E2E_BIN"

var (
	shoalBin string // built once by TestMain, or binEnv's
	repoRoot string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "shoal-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		repoRoot, _ = filepath.Abs("..")
		if bin := os.Getenv(binEnv); bin != "" {
			// Another build (say main's, for a before/after measurement
			// with the same benchmark code): used as it is, not rebuilt.
			if shoalBin, err = filepath.Abs(bin); err == nil {
				_, err = os.Stat(shoalBin)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", binEnv, err)
				return 1
			}
			defer reapBeforeTimeout()()
			return run(m)
		}
		shoalBin = filepath.Join(dir, "shoal")
		build := exec.Command("go", "build", "-tags", buildTags, "-o", shoalBin, ".")
		build.Dir = repoRoot
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build shoal: %v\n%s", err, out)
			return 1
		}
		defer reapBeforeTimeout()()
		return run(m)
	}())
}

// run runs the tests and benchmarks, failing also when a sub-benchmark
// failed that go test let pass (see subBench).
func run(m *testing.M) int {
	code := m.Run()
	if code == 0 && subFailed.Load() {
		fmt.Fprintln(os.Stderr, "e2e: FAIL: a sub-benchmark failed (above) in a run go test does not count")
		code = 1
	}
	return code
}

// result is what a finished command printed.
type result struct {
	code           int
	stdout, stderr string
}

// shoal runs the binary with args and the given extra environment.
func shoal(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, shoalBin, args...)
	cmd.Env = append(cleanEnv(), env...)
	return runCmd(t, cmd)
}

func runCmd(t testing.TB, cmd *exec.Cmd) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// cleanEnv is the environment without any SHOAL_ variable of the caller's.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHOAL_") {
			env = append(env, kv)
		}
	}
	return env
}

type localCluster struct {
	t   *testing.T
	dir string
	env []string
}

func newLocalCluster(t *testing.T) *localCluster {
	dir := t.TempDir()
	lc := &localCluster{t: t, dir: dir, env: []string{
		"SHOAL_CLUSTER_DIR=" + dir,
		"SHOAL_BIN=" + shoalBin,
		"SHOAL_HTTP_PORT=0",
		"SHOAL_GOSSIP_PORT=0",
		"SHOAL_START_TIMEOUT=60",
	}}
	unregister := lc.stopOnTimeout()
	t.Cleanup(func() {
		lc.script("stop")
		unregister()
	})
	return lc
}

func (lc *localCluster) script(args ...string) result {
	lc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	return runCmd(lc.t, lc.scriptCmd(ctx, args...))
}

// scriptCmd is scripts/local-cluster.sh with args, on lc's cluster.
func (lc *localCluster) scriptCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot, "scripts", "local-cluster.sh"), args...)
	cmd.Dir = repoRoot
	cmd.Env = append(cleanEnv(), lc.env...)
	return cmd
}

// status parses `status`: node name -> pid and URL.
func (lc *localCluster) status() map[string][2]string {
	lc.t.Helper()
	r := lc.script("status")
	if r.code != 0 {
		lc.t.Fatalf("status: %d %s", r.code, r.stderr)
	}
	out := map[string][2]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			lc.t.Fatalf("status line %q: want NAME PID URL", line)
		}
		out[f[0]] = [2]string{f[1], f[2]}
	}
	return out
}

func (lc *localCluster) secretFile() string { return filepath.Join(lc.dir, "secret") }

func processGone(pid string) error {
	var p int
	fmt.Sscan(pid, &p)
	if err := syscall.Kill(p, 0); err == nil {
		return fmt.Errorf("process %d still running", p)
	}
	return nil
}

func TestLocalClusterScript(t *testing.T) {
	lc := newLocalCluster(t)
	if r := lc.script("start", "3"); r.code != 0 {
		t.Fatalf("start 3: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	st := lc.status()
	if len(st) != 3 {
		t.Fatalf("status lists %d nodes: %v", len(st), st)
	}
	sec, err := secret.Load(lc.secretFile())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	peerIDs := map[string]string{}
	for name, s := range st {
		cl, err := client.New(s[1], sec.APIToken())
		if err != nil {
			t.Fatal(err)
		}
		ms, err := cl.Members(ctx)
		if err != nil {
			t.Fatalf("%s members: %v", name, err)
		}
		alive := 0
		for _, m := range ms {
			if m.State == "alive" {
				alive++
			}
			peerIDs[m.Name] = m.PeerID
		}
		if alive != 3 {
			t.Fatalf("%s sees %d alive: %+v", name, alive, ms)
		}
	}

	// The CLI pings every pair over the data plane.
	env := []string{"SHOAL_SECRET_FILE=" + lc.secretFile()}
	for from, s := range st {
		for to := range st {
			r := shoal(t, env, "p2p", "ping", "--addr", s[1], to)
			if r.code != 0 || !strings.Contains(r.stdout, "pong from "+to) {
				t.Fatalf("ping %s -> %s: exit %d %s%s", from, to, r.code, r.stdout, r.stderr)
			}
		}
	}
	r := shoal(t, env, "members", "--addr", st["node1"][1])
	if r.code != 0 || strings.Count(r.stdout, " alive ") != 3 {
		t.Fatalf("shoal members: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// An agent with another secret is not admitted, and says why.
	other := filepath.Join(t.TempDir(), "other-secret")
	os.WriteFile(other, []byte(secret.Generate().String()), 0o600)
	gossipAddr := readField(t, filepath.Join(lc.dir, "node1", "agent.json"), "gossip")
	r = shoal(t, nil, "agent", "--name", "intruder", "--bind", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--data-dir", t.TempDir(), "--secret-file", other, "--join", gossipAddr, "--join-timeout", "3s")
	if r.code == 0 || !strings.Contains(r.stderr, "secret") {
		t.Fatalf("intruder: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	cl, _ := client.New(st["node2"][1], sec.APIToken())
	if ms, _ := cl.Members(ctx); len(ms) != 3 {
		t.Fatalf("intruder is listed: %+v", ms)
	}

	// logs prints a node's log.
	if r := lc.script("logs", "node2"); r.code != 0 || !strings.Contains(r.stdout, "agent started") {
		t.Fatalf("logs node2: exit %d %q", r.code, r.stderr)
	}
	if r := lc.script("logs", "nosuchnode"); r.code == 0 {
		t.Fatal("logs of an unknown node succeeded")
	}

	// SIGTERM makes an agent leave: the others see "left", not "dead".
	var pid3 int
	fmt.Sscan(st["node3"][0], &pid3)
	syscall.Kill(pid3, syscall.SIGTERM)
	cl1, _ := client.New(st["node1"][1], sec.APIToken())
	if err := clustertest.Wait(30*time.Second, func() error {
		ms, err := cl1.Members(ctx)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.Name == "node3" && m.State != "left" {
				return fmt.Errorf("node3 is %s", m.State)
			}
		}
		return processGone(st["node3"][0])
	}); err != nil {
		t.Fatal(err)
	}

	// stop leaves no process behind.
	if r := lc.script("stop"); r.code != 0 {
		t.Fatalf("stop: %s", r.stderr)
	}
	for name, s := range st {
		if err := processGone(s[0]); err != nil {
			t.Fatalf("%s after stop: %v", name, err)
		}
	}

	// start on the existing dir brings the same nodes back on their data.
	if r := lc.script("start"); r.code != 0 {
		t.Fatalf("restart: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	st2 := lc.status()
	cl, _ = client.New(st2["node3"][1], sec.APIToken())
	ms, err := cl.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.State == "alive" && m.PeerID != peerIDs[m.Name] {
			t.Fatalf("%s changed peer ID across restart", m.Name)
		}
	}
	if r := lc.script("clean"); r.code != 0 {
		t.Fatalf("clean: %s", r.stderr)
	}
	for name, s := range st2 {
		if err := processGone(s[0]); err != nil {
			t.Fatalf("%s after clean: %v", name, err)
		}
	}
	if _, err := os.Stat(lc.dir); !os.IsNotExist(err) {
		t.Fatalf("clean left %s", lc.dir)
	}
}

func readField(t *testing.T, path, key string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && strings.Trim(k, `"`) == key {
			return strings.Trim(strings.TrimSpace(v), `",`)
		}
	}
	t.Fatalf("%s has no %q", path, key)
	return ""
}

func TestBadInput(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte(secret.Generate().String()), 0o600)
	badSecret := filepath.Join(t.TempDir(), "bad-secret")
	os.WriteFile(badSecret, []byte("hunter2"), 0o600)
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o600)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyUDP, err := net.ListenPacket("udp", busy.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer busyUDP.Close()

	// Data dirs whose meta.db is empty or garbled: the agent refuses them
	// without --recover-meta.
	emptyMeta, garbledMeta := filepath.Join(t.TempDir(), "empty"), filepath.Join(t.TempDir(), "garbled")
	for dir, data := range map[string]string{emptyMeta: "", garbledMeta: strings.Repeat("not a bbolt file ", 1000)} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "meta.db"), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	agent := func(extra ...string) []string {
		return append([]string{"agent", "--bind", "127.0.0.1:0", "--http", "127.0.0.1:0",
			"--data-dir", filepath.Join(t.TempDir(), "d"), "--secret-file", secretFile}, extra...)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"agent", "--no-such-flag"}, "no-such-flag"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unreachable join", agent("--join", "127.0.0.1:1", "--join-timeout", "1s"), "127.0.0.1:1"},
		{"http port in use", agent("--http", busy.Addr().String()), "address already in use"},
		{"gossip port in use", agent("--bind", busy.Addr().String()), "address already in use"},
		{"unwritable data dir", agent("--data-dir", filepath.Join(notDir, "sub")), "not a directory"},
		{"malformed secret file", agent("--secret-file", badSecret), "malformed secret"},
		{"missing secret file", agent("--secret-file", "/nonexistent/secret"), "no such file"},
		{"bad bind", agent("--bind", "nonsense"), "HOST:PORT"},
		{"bad log level", agent("--log-level", "loud"), "--log-level"},
		{"zero reconnect interval", agent("--reconnect-interval", "0s"), "--reconnect-interval"},
		{"negative reconnect timeout", agent("--reconnect-timeout", "-1h"), "--reconnect-timeout"},
		{"bad clock drift", agent("--max-clock-drift", "-1s"), "--max-clock-drift"},
		{"short tombstone TTL", agent("--tombstone-ttl", "10ms"), "--tombstone-ttl"},
		{"tiny anti-entropy interval", agent("--anti-entropy-interval", "1ms"), "--anti-entropy-interval"},
		{"bad reserve unit", agent("--reserve", "12parsecs"), `--reserve "12parsecs": unknown unit "parsecs"`},
		{"reserve above 90%", agent("--reserve", "95%"), `--reserve "95%": a percentage must be a number from 0 to 90`},
		{"negative reserve", agent("--reserve", "-1GiB"), `--reserve "-1GiB": want a size`},
		{"empty meta.db", agent("--data-dir", emptyMeta), "is empty (0 bytes)"},
		{"garbled meta.db", agent("--data-dir", garbledMeta), "--recover-meta"},
		{"public bind without secret", []string{"agent", "--bind", "0.0.0.0:0", "--http", "127.0.0.1:0", "--data-dir", t.TempDir()}, "without a cluster secret"},
		{"bad --addr", []string{"members", "--addr", "::bad::"}, "bad agent address"},
		{"unreachable --addr", []string{"members", "--addr", "http://127.0.0.1:1"}, "cannot reach the agent"},
		{"ring owners without key", []string{"ring", "owners"}, "usage"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := shoal(t, nil, c.args...)
			if r.code == 0 {
				t.Fatalf("exit 0; stdout %q", r.stdout)
			}
			lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "shoal: ") || !strings.Contains(last, c.want) {
				t.Fatalf("last stderr line %q: want \"shoal: ...%s...\"; stderr:\n%s", last, c.want, r.stderr)
			}
			if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
				t.Fatalf("stack trace on stderr:\n%s", r.stderr)
			}
		})
	}
}

// Package proctest runs the examples as their users do: the example's
// program built outside Shoal's module, against a cluster of stock `shoal`
// agents (built from the repository, so without the example's job), each
// its own process, started by scripts/local-cluster.sh.
package proctest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Result is what a finished command printed.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// repoRoot is the directory of the shoal.dev/shoal module (the replace in
// the examples' go.mod).
func repoRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "shoal.dev/shoal").Output()
	if err != nil {
		t.Fatalf("find the shoal module: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// Build builds the main package in dir (relative to the test's directory,
// "." for its own) into a temporary directory and returns the binary.
func Build(t testing.TB, dir, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-tags", buildTags, "-o", bin, ".")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	return bin
}

// Cluster is a running cluster of stock agents.
type Cluster struct {
	t       testing.TB
	root    string
	Dir     string
	Shoal   string            // the stock binary the agents run
	Addrs   map[string]string // node name -> HTTP URL
	PIDs    map[string]int
	env     []string
	started time.Time
	// Timeout bounds each command Run runs; default 5 minutes.
	Timeout time.Duration
}

// buildTags are the build tags of every shoal binary (TAGS in the
// repository's Makefile): programs that link cli.Main build with them too.
const buildTags = "urfave_cli_no_docs"

// Start builds the stock shoal binary and starts n agents with a cluster
// secret; they are stopped at the end of the test.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	root := repoRoot(t)
	shoal := filepath.Join(t.TempDir(), "shoal")
	cmd := exec.Command("go", "build", "-tags", buildTags, "-o", shoal, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build shoal: %v\n%s", err, out)
	}
	c := &Cluster{t: t, root: root, Dir: t.TempDir(), Shoal: shoal}
	c.env = []string{"SHOAL_CLUSTER_DIR=" + c.Dir, "SHOAL_BIN=" + shoal, "SHOAL_HTTP_PORT=0", "SHOAL_GOSSIP_PORT=0", "SHOAL_START_TIMEOUT=120"}
	t.Cleanup(func() { c.script("stop") })
	if r := c.script("start", strconv.Itoa(n)); r.Code != 0 {
		t.Fatalf("start the cluster: %s%s", r.Stdout, r.Stderr)
	}
	r := c.script("status")
	c.Addrs, c.PIDs = map[string]string{}, map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("status line %q", line)
		}
		c.Addrs[f[0]] = f[2]
		c.PIDs[f[0]], _ = strconv.Atoi(f[1])
	}
	return c
}

func (c *Cluster) script(args ...string) Result {
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.root, "scripts", "local-cluster.sh"), args...)
	cmd.Env = append(cleanEnv(), c.env...)
	return run(c.t, cmd)
}

// Env is the client environment for node's agent.
func (c *Cluster) Env(node string) []string {
	return []string{"SHOAL_ADDR=" + c.Addrs[node], "SHOAL_SECRET_FILE=" + filepath.Join(c.Dir, "secret")}
}

// Run runs bin with args as a client of node's agent.
func (c *Cluster) Run(node, bin string, args ...string) Result {
	c.t.Helper()
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(cleanEnv(), c.Env(node)...)
	return run(c.t, cmd)
}

// MustRun is Run, failing the test unless the command succeeds.
func (c *Cluster) MustRun(node, bin string, args ...string) Result {
	c.t.Helper()
	r := c.Run(node, bin, args...)
	if r.Code != 0 {
		c.t.Fatalf("%s %v: exit %d\n%s%s", filepath.Base(bin), args, r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// Log is node's agent log.
func (c *Cluster) Log(node string) string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, node+".log"))
	return string(b)
}

// WorkersStarted counts the task workers the agents started for job id,
// by node.
func (c *Cluster) WorkersStarted(id string) map[string]int {
	out := map[string]int{}
	for node := range c.Addrs {
		out[node] = strings.Count(c.Log(node), `msg="started a worker process" node=`+node+` job=`+id+" ")
	}
	return out
}

// Kill kills node's agent with SIGKILL.
func (c *Cluster) Kill(node string) {
	c.t.Helper()
	if err := syscall.Kill(c.PIDs[node], syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill %s: %v", node, err)
	}
}

// Metric sums the samples of a metric, whose lines start with prefix, in
// the /metrics of every agent that answers.
func (c *Cluster) Metric(prefix string) float64 {
	c.t.Helper()
	tok := strings.TrimSpace(c.MustRun("node1", c.Shoal, "token").Stdout)
	var sum float64
	for _, addr := range c.Addrs {
		req, _ := http.NewRequest("GET", addr+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue // a killed node
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, prefix) {
				f := strings.Fields(line)
				v, _ := strconv.ParseFloat(f[len(f)-1], 64)
				sum += v
			}
		}
	}
	return sum
}

// CPUSeconds is the CPU time (user and system) the agents have used so
// far, with that of their children reaped (workers, streaming commands):
// /proc/PID/stat's utime, stime, cutime and cstime at 100 ticks a second.
func (c *Cluster) CPUSeconds() float64 {
	var ticks float64
	for _, pid := range c.PIDs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // f[0] is field 3
		for _, k := range []int{14, 15, 16, 17} {                // utime stime cutime cstime
			v, _ := strconv.ParseFloat(f[k-3], 64)
			ticks += v
		}
	}
	return ticks / 100
}

// Eventually calls cond until it returns nil or the deadline passes.
func Eventually(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// SameFiles fails unless dir a and dir b hold the same part files, byte
// for byte.
func SameFiles(t testing.TB, a, b string) {
	t.Helper()
	pa, _ := filepath.Glob(filepath.Join(a, "part-*"))
	pb, _ := filepath.Glob(filepath.Join(b, "part-*"))
	if len(pa) == 0 || len(pa) != len(pb) {
		t.Fatalf("%d part files in %s, %d in %s", len(pa), a, len(pb), b)
	}
	for i := range pa {
		x, _ := os.ReadFile(pa[i])
		y, _ := os.ReadFile(pb[i])
		if filepath.Base(pa[i]) != filepath.Base(pb[i]) || !bytes.Equal(x, y) {
			t.Fatalf("%s (%d bytes) differs from %s (%d bytes)", pa[i], len(x), pb[i], len(y))
		}
	}
}

var idRe = regexp.MustCompile(`job-[0-9]{8}-[0-9]{6}-[0-9a-f]+`)

// JobID finds the job ID a `job run` printed.
func JobID(t testing.TB, r Result) string {
	t.Helper()
	id := idRe.FindString(r.Stdout + r.Stderr)
	if id == "" {
		t.Fatalf("no job ID in %q", r.Stdout+r.Stderr)
	}
	return id
}

func run(t testing.TB, cmd *exec.Cmd) Result {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return Result{Code: code, Stdout: stdout.String(), Stderr: stderr.String()}
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHOAL_") {
			env = append(env, kv)
		}
	}
	return env
}

// Processes lists the processes whose executable is path.
func Processes(path string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && exe == path {
			pids = append(pids, pid)
		}
	}
	return pids
}

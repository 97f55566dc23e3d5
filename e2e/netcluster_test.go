package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/nettest/netns"
	"shoal.dev/shoal/secret"
)

// nsCluster runs one shoal agent per host of a netns.Lab: real processes
// on real addresses (198.18.0.N), with a cluster secret and the default
// (LAN) gossip timings. Clients run inside a host's namespace and talk to
// its agent on the host's loopback, so they work whatever the partition.
type nsCluster struct {
	t      *testing.T
	lab    *netns.Lab
	dir    string
	secret string   // secret file
	extra  []string // extra agent flags
	agents []*exec.Cmd
}

const nsHTTP = "127.0.0.1:7470"

// startNSCluster builds a lab of n hosts and starts an agent on each, h1
// first and the others joining it, and waits until every node sees n
// alive. extra is appended to every agent's flags.
func startNSCluster(t *testing.T, n int, extra ...string) *nsCluster {
	t.Helper()
	lab := netns.New(t, netns.Config{Hosts: n})
	c := &nsCluster{t: t, lab: lab, dir: t.TempDir(), extra: extra, agents: make([]*exec.Cmd, n)}
	c.secret = filepath.Join(c.dir, "secret")
	if err := os.WriteFile(c.secret, []byte(secret.Generate().String()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stopAll) // runs before the lab's Close
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs(60)
		}
	})
	for i := range n {
		var join []string
		if i > 0 {
			join = []string{c.gossipAddr(0)}
		}
		c.start(i, join...)
	}
	c.waitAlive(n, 90*time.Second)
	return c
}

func (c *nsCluster) gossipAddr(i int) string { return c.lab.Host(i).IP() + ":7946" }

func (c *nsCluster) logPath(i int) string {
	return filepath.Join(c.dir, c.lab.Host(i).Name()+".log")
}

// start starts host i's agent (on its existing data dir, if any), joining
// the given gossip addresses.
func (c *nsCluster) start(i int, join ...string) {
	c.t.Helper()
	h := c.lab.Host(i)
	args := []string{"agent", "--name", h.Name(), "--bind", h.IP() + ":7946", "--http", nsHTTP,
		"--p2p", "/ip4/" + h.IP() + "/tcp/7000", "--data-dir", filepath.Join(c.dir, h.Name()),
		"--secret-file", c.secret}
	for _, j := range join {
		args = append(args, "--join", j)
	}
	args = append(args, c.extra...)
	log, err := os.OpenFile(c.logPath(i), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	defer log.Close()
	cmd := h.Command(shoalBin, args...)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", h.Name(), err)
	}
	killOnTimeout(c.t, cmd)
	c.agents[i] = cmd
	// The agent listens once agent.json is written.
	clustertest.Eventually(c.t, 60*time.Second, func() error {
		if cmd.ProcessState != nil {
			return nil
		}
		_, err := os.Stat(filepath.Join(c.dir, h.Name(), "agent.json"))
		return err
	})
}

// kill stops host i's agent with sig and waits for it.
func (c *nsCluster) kill(i int, sig syscall.Signal) {
	cmd := c.agents[i]
	if cmd == nil {
		return
	}
	c.agents[i] = nil
	cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	os.Remove(filepath.Join(c.dir, c.lab.Host(i).Name(), "agent.json"))
}

func (c *nsCluster) stopAll() {
	for i := range c.agents {
		c.kill(i, syscall.SIGKILL)
	}
}

// cli runs a shoal client command inside host i, against its agent.
func (c *nsCluster) cli(i int, args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", c.lab.Host(i).Namespace(), shoalBin}, args...)...)
	cmd.Env = append(cleanEnv(), "SHOAL_ADDR=http://"+nsHTTP, "SHOAL_SECRET_FILE="+c.secret)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("%v: %v", args, err)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func (c *nsCluster) mustCLI(i int, args ...string) string {
	c.t.Helper()
	r := c.cli(i, args...)
	if r.code != 0 {
		c.t.Fatalf("%s: shoal %s: exit %d: %s", c.lab.Host(i).Name(), strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// alive returns the names host i's agent sees alive.
func (c *nsCluster) alive(i int) ([]string, error) {
	r := c.cli(i, "members")
	if r.code != 0 {
		return nil, fmt.Errorf("%s: members: %s", c.lab.Host(i).Name(), r.stderr)
	}
	var names []string
	for _, line := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[2] == "alive" {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// waitAlive waits until every running agent sees want alive.
func (c *nsCluster) waitAlive(want int, timeout time.Duration) {
	c.t.Helper()
	clustertest.Eventually(c.t, timeout, func() error {
		for i, a := range c.agents {
			if a == nil {
				continue
			}
			names, err := c.alive(i)
			if err != nil {
				return err
			}
			if len(names) != want {
				return fmt.Errorf("%s sees %d alive (%s), want %d", c.lab.Host(i).Name(), len(names), strings.Join(names, ","), want)
			}
		}
		return nil
	})
}

// metric returns the value of the /metrics series (name and labels, as
// printed) on host i's agent, or "" if it has none.
func (c *nsCluster) metric(i int, series string) string {
	c.t.Helper()
	cmd := c.lab.Host(i).Command(os.Args[0])
	cmd.Env = append(cleanEnv(), fetchEnv+"=http://"+nsHTTP+"/metrics")
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("%s: metrics: %v", c.lab.Host(i).Name(), err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// fetchEnv makes the test binary a one-shot HTTP GET run inside a host (the
// helper-process pattern): it prints the body of the URL and exits.
const fetchEnv = "SHOAL_E2E_FETCH"

func init() {
	url := os.Getenv(fetchEnv)
	if url == "" {
		return
	}
	resp, err := http.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	io.Copy(os.Stdout, resp.Body)
	os.Exit(0)
}

// logHas reports whether host i's log has a line containing s.
func (c *nsCluster) logHas(i int, s string) bool {
	b, _ := os.ReadFile(c.logPath(i))
	return bytes.Contains(b, []byte(s))
}

// dumpLogs prints the last lines of every agent's log.
func (c *nsCluster) dumpLogs(lines int) {
	for i, h := range c.lab.Hosts() {
		b, _ := os.ReadFile(c.logPath(i))
		all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		c.t.Logf("--- %s log (last %d lines) ---\n%s", h.Name(), lines, strings.Join(all[max(0, len(all)-lines):], "\n"))
	}
}

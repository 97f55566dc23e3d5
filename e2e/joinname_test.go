package e2e

import (
	"fmt"
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

// TestJoinByHostsName: three hosts (network namespaces) whose /etc/hosts
// names each one "self" and all three "shoal.test", as a round-robin DNS
// record would. Each agent is started with names only — --bind self:7946,
// --p2p /dns4/self/tcp/7000, --http localhost:7470, --join
// shoal.test:7946 --retry-join — one after the other, the first while no
// other runs; no IP address is on any command line, and all three meet.
func TestJoinByHostsName(t *testing.T) {
	const n = 3
	lab := netns.New(t, netns.Config{Hosts: n})
	dir := t.TempDir()
	sec := filepath.Join(dir, "secret")
	if err := os.WriteFile(sec, []byte(secret.Generate().String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, h := range lab.Hosts() {
		fmt.Fprintf(&all, "%s shoal.test\n", h.IP())
	}
	agents := make([]*exec.Cmd, n)
	t.Cleanup(func() {
		for _, a := range agents {
			if a != nil && a.Process != nil {
				a.Process.Signal(syscall.SIGTERM)
				done := make(chan struct{})
				go func() { a.Wait(); close(done) }()
				select {
				case <-done:
				case <-time.After(20 * time.Second):
					a.Process.Kill()
					<-done
				}
			}
		}
		if t.Failed() {
			for i := range n {
				b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("h%d.log", i+1)))
				t.Logf("h%d.log:\n%s", i+1, b)
			}
		}
	})
	for i, h := range lab.Hosts() {
		if err := h.SetHosts("127.0.0.1 localhost\n" + h.IP() + " self\n" + all.String()); err != nil {
			t.Fatal(err)
		}
		args := []string{"agent", "--name", h.Name(), "--bind", "self:7946", "--p2p", "/dns4/self/tcp/7000",
			"--http", "localhost:7470", "--join", "shoal.test:7946", "--retry-join",
			"--data-dir", filepath.Join(dir, h.Name()), "--secret-file", sec, "--fast-gossip"}
		for _, a := range args {
			if strings.Contains(a, "198.18.") {
				t.Fatalf("an IP address on the command line: %q", a)
			}
		}
		log, err := os.Create(filepath.Join(dir, h.Name()+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := h.Command(shoalBin, args...)
		cmd.Env = cleanEnv()
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killOnTimeout(t, cmd)
		log.Close()
		agents[i] = cmd
		// With --retry-join the agent serves at once, alone if need be.
		clustertest.Eventually(t, 60*time.Second, func() error {
			_, err := os.Stat(filepath.Join(dir, h.Name(), "agent.json"))
			return err
		})
	}
	for _, h := range lab.Hosts() {
		clustertest.Eventually(t, 90*time.Second, func() error {
			cmd := h.Command(shoalBin, "members", "--addr", "http://localhost:7470", "--secret-file", sec)
			cmd.Env = cleanEnv()
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("%s: members: %v: %s", h.Name(), err, out)
			}
			alive := 0
			for _, line := range strings.Split(string(out), "\n") {
				if f := strings.Fields(line); len(f) >= 3 && f[2] == "alive" {
					alive++
				}
			}
			if alive != n {
				return fmt.Errorf("%s sees %d alive:\n%s", h.Name(), alive, out)
			}
			return nil
		})
	}
}

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"shoal.dev/shoal/client"
	"strings"
	"syscall"
	"testing"
	"time"

	"shoal.dev/shoal/clustertest"
)

// TestRestartFindsClusterThroughPersistedMembers: node3 crashes; then
// node1, the address node3 joins through, dies too. node3, restarted with
// only node1 in --join, finds the cluster through the members it kept in
// DATA_DIR/peers.json, and the others see it alive again.
func TestRestartFindsClusterThroughPersistedMembers(t *testing.T) {
	lc := newLocalCluster(t)
	if r := lc.script("start", "3"); r.code != 0 {
		t.Fatalf("start 3: %s%s", r.stdout, r.stderr)
	}
	st := lc.status()
	node1Gossip := readField(t, filepath.Join(lc.dir, "node1", "agent.json"), "gossip")
	node3Gossip := readField(t, filepath.Join(lc.dir, "node3", "agent.json"), "gossip")
	peersFile := filepath.Join(lc.dir, "node3", "peers.json")
	clustertest.Eventually(t, 30*time.Second, func() error {
		b, err := os.ReadFile(peersFile)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), `"node1"`) || !strings.Contains(string(b), `"node2"`) {
			return fmt.Errorf("node3's peers.json lacks node1 or node2:\n%s", b)
		}
		return nil
	})

	for _, n := range []string{"node3", "node1"} {
		var pid int
		fmt.Sscan(st[n][0], &pid)
		syscall.Kill(pid, syscall.SIGKILL)
		clustertest.Eventually(t, 30*time.Second, func() error { return processGone(st[n][0]) })
	}

	// node3 again, on its data and gossip address, with the dead node1 as
	// its only --join.
	dir := filepath.Join(lc.dir, "node3")
	os.Remove(filepath.Join(dir, "agent.json"))
	logPath := filepath.Join(t.TempDir(), "node3.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, shoalBin, "agent", "--name", "node3", "--data-dir", dir,
		"--secret-file", lc.secretFile(), "--fast-gossip", "--bind", node3Gossip, "--http", "127.0.0.1:0",
		"--join", node1Gossip, "--join-timeout", "60s")
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killOnTimeout(t, cmd)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	clustertest.Eventually(t, 90*time.Second, func() error {
		select {
		case err := <-exited:
			exited <- err
			b, _ := os.ReadFile(logPath)
			t.Fatalf("node3 exited: %v\n%s", err, b)
		default:
		}
		_, err := os.Stat(filepath.Join(dir, "agent.json"))
		return err
	})
	url := readField(t, filepath.Join(dir, "agent.json"), "http")

	for name, cl := range map[string]*client.Client{"node2": clientFor(t, lc, st["node2"][1]), "node3": clientFor(t, lc, url)} {
		clustertest.Eventually(t, 30*time.Second, func() error {
			ms, err := cl.Members(context.Background())
			if err != nil {
				return err
			}
			alive := map[string]bool{}
			for _, m := range ms {
				alive[m.Name] = m.State == "alive"
			}
			if !alive["node2"] || !alive["node3"] || alive["node1"] {
				return fmt.Errorf("%s sees %+v, want node2 and node3 alive, node1 not", name, ms)
			}
			return nil
		})
	}
	// No path was written on both sides of a split here: fs conflicts
	// says so (the partition test covers a conflict).
	env := []string{"SHOAL_SECRET_FILE=" + lc.secretFile()}
	if r := shoal(t, env, "fs", "conflicts", "--addr", url); r.code != 0 || r.stdout != "no conflicts\n" {
		t.Fatalf("fs conflicts: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	if r := shoal(t, env, "fs", "conflicts", "--addr", url, "extra"); r.code != 2 || !strings.Contains(r.stderr, "usage:") || !strings.Contains(r.stderr, "fs conflicts") {
		t.Fatalf("fs conflicts extra: exit %d %s", r.code, r.stderr)
	}
	b, _ := os.ReadFile(logPath)
	if !strings.Contains(string(b), "none of the --join addresses answered; trying the members this node knew before it stopped") {
		t.Fatalf("node3's log does not say it fell back to its known members:\n%s", b)
	}
}

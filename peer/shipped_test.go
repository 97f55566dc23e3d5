package peer_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/scheduler"
	"shoal.dev/shoal/secret"
)

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestShippedSubmissionRefused: a shipped job whose program is missing
// (410), not what its name says, not a Go program, or not a Shoal program
// (400) is refused at submission in Shoal's words, and nothing is
// written; so is a shipped job on a cluster that listens beyond loopback
// without a secret, or runs jobs as --task-user.
func TestShippedSubmissionRefused(t *testing.T) {
	sec := secret.Generate()
	c := clustertest.Start(t, 2, clustertest.Options{Secret: sec})
	n := c.Node(0)
	put(t, n, "/in", []byte("a b c\n"), blockstore.MinBlockSize)
	script := []byte("#!/bin/sh\necho hi\n")
	put(t, n, scheduler.BinaryPath(sum(script)), script, blockstore.MinBlockSize)
	liar := []byte("not the bytes its name says")
	put(t, n, scheduler.BinaryPath(sum([]byte("other bytes"))), liar, blockstore.MinBlockSize)
	// A Go program that is no Shoal worker.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644)
	build := exec.Command("go", "build", "-o", "prog", "main.go")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	self, err := os.ReadFile(filepath.Join(dir, "prog"))
	if err != nil {
		t.Fatal(err)
	}
	put(t, n, scheduler.BinaryPath(sum(self)), self, 4<<20)
	body := func(bin string) string {
		return fmt.Sprintf(`{"name":"myjob","inputs":["/in"],"output":"/o","binary":%q}`, bin)
	}
	cases := []struct {
		name, bin, want string
		code            int
	}{
		{"not a sum", "xyz", `binary "xyz": want the program's SHA-256 in 64 lower-case hex digits`, http.StatusBadRequest},
		// 410: the client may store it again and submit again.
		{"not stored", sum([]byte("nothing")), "is not stored in the cluster (/.shoal/bin/", http.StatusGone},
		{"not what its name says", sum([]byte("other bytes")), "has SHA-256 " + sum(liar)[:12], http.StatusBadRequest},
		{"not a Go program", sum(script), "the shipped program is not a Go executable", http.StatusBadRequest},
		{"not a Shoal worker", sum(self), "exited with status 0 at start, before answering as a Shoal worker (is it a Go program whose main calls cli.Main?)", http.StatusBadRequest},
	}
	for _, tc := range cases {
		code, msg := postJob(t, n, sec, body(tc.bin))
		if code != tc.code || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
			t.Errorf("%s: %d %q, want %d containing %q", tc.name, code, msg, tc.code, tc.want)
		}
	}
	if _, err := n.FS().List("/o"); err == nil {
		t.Error("a refused job wrote its output")
	}

	open := clustertest.Start(t, 1, clustertest.Options{NoSecret: true, Configure: func(_ int, cfg *peer.Config) { cfg.Insecure = true }})
	_, err = open.Node(0).Submit(t.Context(), scheduler.SubmitRequest{Name: "myjob", Inputs: []string{"/in"}, Output: "/o", Binary: sum(self)})
	if err == nil || !strings.Contains(err.Error(), "needs a secret") {
		t.Errorf("insecure cluster without a secret: %v", err)
	}
}

// TestUnusedProgramsCollected: a stored program that no remembered job
// uses is deleted once past the grace period (here a nanosecond), by the
// agents' clean-up loop; other files stay.
func TestUnusedProgramsCollected(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Configure: func(_ int, cfg *peer.Config) { cfg.BinaryGrace = time.Nanosecond }})
	prog := []byte("an old program no job uses")
	p := scheduler.BinaryPath(sum(prog))
	put(t, c.Node(0), p, prog, blockstore.MinBlockSize)
	put(t, c.Node(1), "/data/keep", []byte("data\n"), blockstore.MinBlockSize)
	clustertest.Eventually(t, 60*time.Second, func() error {
		for i := 0; i < c.Len(); i++ {
			if _, err := c.Node(i).FS().Stat(p); !errors.Is(err, blockstore.ErrNoFile) {
				return fmt.Errorf("node %d still lists %s (%v)", i, p, err)
			}
		}
		return nil
	})
	for i := 0; i < c.Len(); i++ {
		// The record was written through node2: pull it as the API would.
		c.Node(i).SyncFiles(context.Background(), "/data/keep")
		if _, err := c.Node(i).FS().Stat("/data/keep"); err != nil {
			t.Errorf("node %d: /data/keep: %v", i, err)
		}
	}
}

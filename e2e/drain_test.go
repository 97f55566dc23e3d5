package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/clustertest"
)

// TestDrainCommand: on a local cluster of four agent processes, `shoal
// drain` against node4 hands its blocks over, prints that it is done, and
// the agent leaves (the others see it left) and exits; every block of a
// file of replication 3 is then healthy on the three others, and the file
// reads back the same. (peer's TestDrain checks the copies at every look
// during a drain.)
func TestDrainCommand(t *testing.T) {
	lc := newLocalCluster(t)
	if r := lc.script("start", "4"); r.code != 0 {
		t.Fatalf("start 4: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	st := lc.status()
	env := []string{"SHOAL_SECRET_FILE=" + lc.secretFile()}
	var data bytes.Buffer
	for i := range 40_000 {
		fmt.Fprintf(&data, "line %d of the file to keep through the drain\n", i)
	}
	local := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(local, data.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := shoal(t, env, "fs", "put", "--addr", st["node1"][1], "--block-size", "64K", "--replication", "3", local, "/keep/in.txt"); r.code != 0 {
		t.Fatalf("put: %d %s", r.code, r.stderr)
	}
	healthy := func(addr string) error {
		r := shoal(t, env, "fs", "stat", "--addr", addr, "/keep/in.txt")
		if r.code != 0 {
			return fmt.Errorf("stat: %s", r.stderr)
		}
		if !strings.Contains(r.stdout, "Status: HEALTHY") {
			return fmt.Errorf("not healthy:\n%s", r.stdout)
		}
		return nil
	}
	clustertest.Eventually(t, 60*time.Second, func() error { return healthy(st["node1"][1]) })

	r := shoal(t, env, "drain", "--addr", st["node4"][1], "--timeout", "3m")
	if r.code != 0 || !strings.Contains(r.stdout, "draining node4") || !strings.Contains(r.stdout, "node4 drained: every block it held is on other members") {
		t.Fatalf("drain: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	clustertest.Eventually(t, 60*time.Second, func() error { return processGone(st["node4"][0]) })
	clustertest.Eventually(t, 60*time.Second, func() error {
		r := shoal(t, env, "members", "--addr", st["node1"][1])
		for _, line := range strings.Split(r.stdout, "\n") {
			if f := strings.Fields(line); len(f) >= 3 && f[0] == "node4" && f[2] == "left" {
				return nil
			}
		}
		return fmt.Errorf("node4 not left:\n%s", r.stdout)
	})
	if err := healthy(st["node2"][1]); err != nil {
		t.Fatal(err)
	}
	r = shoal(t, env, "fs", "cat", "--addr", st["node2"][1], "/keep/in.txt")
	if r.code != 0 || r.stdout != data.String() {
		t.Fatalf("cat after the drain: exit %d, %d bytes of %d: %s", r.code, len(r.stdout), data.Len(), r.stderr)
	}
	log, _ := os.ReadFile(filepath.Join(lc.dir, "node4.log"))
	if !strings.Contains(string(log), "drained") || !strings.Contains(string(log), "stopped") {
		t.Errorf("node4's log does not say it drained and stopped:\n%s", log)
	}
}

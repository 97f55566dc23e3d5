package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"shoal.dev/shoal/client"
	"strings"
	"testing"
)

// TestMembersShowsUnhealthy: `shoal members` shows why a member takes no
// tasks, on its row, and a dash for a healthy one; and each member's free
// disk space, LOW when it is below its reserve.
func TestMembersShowsUnhealthy(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/members" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode([]client.Member{
			{Name: "node1", Gossip: "127.0.0.1:1", State: "alive", PeerID: "p1", HTTP: "http://127.0.0.1:2", DiskFree: 3 << 30, DiskReserve: 1 << 30},
			{Name: "node2", Gossip: "127.0.0.1:3", State: "alive", PeerID: "p2", HTTP: "http://127.0.0.1:4", Unhealthy: "data dir /d/node2: no space left\non device"},
			{Name: "node3", Gossip: "127.0.0.1:5", State: "alive", PeerID: "p3", HTTP: "http://127.0.0.1:6", Version: "v1.2.0", Draining: true},
			{Name: "node4", Gossip: "127.0.0.1:7", State: "alive", PeerID: "p4", HTTP: "http://127.0.0.1:8", Version: "v9.0.0", Incompatible: "incompatible: speaks wire format 9, this node 1"},
			{Name: "node5", Gossip: "127.0.0.1:9", State: "alive", PeerID: "p5", HTTP: "http://127.0.0.1:10", DiskFree: 40 << 20, DiskReserve: 1 << 30, LowDisk: true},
		})
	}))
	defer srv.Close()
	for _, k := range []string{"SHOAL_ADDR", "SHOAL_SECRET_FILE", "SHOAL_SECRET"} {
		t.Setenv(k, "")
	}
	t.Setenv("SHOAL_CLUSTER_DIR", filepath.Join(t.TempDir(), "none"))
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"shoal", "members", "--addr", srv.URL}, &out, &errb); code != 0 {
		t.Fatalf("members: exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 || !strings.HasSuffix(strings.TrimSpace(lines[0]), "UNHEALTHY") || !strings.Contains(lines[0], " DISK FREE ") {
		t.Fatalf("members output:\n%s", out.String())
	}
	if !strings.HasSuffix(strings.TrimSpace(lines[1]), " -") || !strings.Contains(lines[1], "node1") {
		t.Errorf("healthy row: %q", lines[1])
	}
	if !strings.Contains(lines[2], "node2") || !strings.HasSuffix(lines[2], "data dir /d/node2: no space left on device") {
		t.Errorf("unhealthy row: %q", lines[2])
	}
	if !strings.Contains(lines[3], "node3") || !strings.Contains(lines[3], " v1.2.0 ") || !strings.HasSuffix(lines[3], " draining") {
		t.Errorf("draining row: %q", lines[3])
	}
	if !strings.Contains(lines[4], "node4") || !strings.HasSuffix(lines[4], " incompatible: speaks wire format 9, this node 1") {
		t.Errorf("incompatible row: %q", lines[4])
	}
	// Free space, and LOW with the reserve for a member that takes no new
	// blocks or tasks; a dash before a member has said.
	if !strings.Contains(lines[1], " 3 GiB ") {
		t.Errorf("free space of node1: %q", lines[1])
	}
	if f := strings.Fields(lines[2]); f[6] != "-" {
		t.Errorf("node2 has not said its free space: %q", lines[2])
	}
	if !strings.Contains(lines[5], "LOW 40 MiB (reserve 1 GiB)") || !strings.HasSuffix(strings.TrimSpace(lines[5]), " -") {
		t.Errorf("low node5: %q", lines[5])
	}
}

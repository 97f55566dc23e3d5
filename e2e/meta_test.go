package e2e

import (
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
	"shoal.dev/shoal/secret"
)

// TestRecoverMetaFlag runs `shoal agent --recover-meta` as a process on a
// data dir whose meta.db is 0 bytes: the agent moves the file aside, starts,
// and, having no member to re-sync from, answers its API with 503
// "recovering metadata" (health still answers).
func TestRecoverMetaFlag(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "meta.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(secret.Generate().String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(shoalBin, "agent", "--name", "solo", "--bind", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--data-dir", data, "--secret-file", secretFile, "--recover-meta", "--fast-gossip")
	cmd.Env = cleanEnv()
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killOnTimeout(t, cmd)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	info := filepath.Join(data, "agent.json")
	clustertest.Eventually(t, 30*time.Second, func() error {
		if _, err := os.Stat(info); err != nil {
			return fmt.Errorf("agent not started: %v; stderr:\n%s", err, stderr.String())
		}
		return nil
	})
	url := readField(t, info, "http")
	get := func(path string) (int, string) {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/v1/fs/list?path=/"); code != http.StatusServiceUnavailable || !strings.Contains(body, "recovering metadata") {
		t.Fatalf("API during recovery: %d %s", code, body)
	}
	if code, _ := get("/v1/health"); code != http.StatusOK {
		t.Fatalf("health during recovery: %d", code)
	}
	if aside, _ := filepath.Glob(filepath.Join(data, "meta.db.bad-*")); len(aside) != 1 {
		t.Fatalf("the empty meta.db was not moved aside: %v", aside)
	}
}

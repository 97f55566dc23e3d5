package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/client"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/worker"
)

// The test binary is also the shipped program: started by an agent's
// worker pool, it serves Main's jobs of these tests, as cli.Main would.
func TestMain(m *testing.M) {
	if os.Getenv(worker.EnvVar) != "" {
		reg, err := newRegistry([]job.Spec{lineLengths()})
		if err != nil {
			panic(err)
		}
		os.Exit(worker.Serve(reg))
	}
	os.Exit(m.Run())
}

// TestShipAgainWhenDeleted: `job run` of the program's own job finds the
// program stored, and the cluster's clean-up deletes it just before the
// submission reaches the agent (here a proxy deletes it); the agent
// answers 410, and the client stores the program again and submits again,
// once. The output matches the same job run with --local.
func TestShipAgainWhenDeleted(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{NoSecret: true})
	n := c.Node(0)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	prog, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(prog)
	progPath := client.BinaryPath(hex.EncodeToString(s[:]))
	if _, err := n.FS().Create(context.Background(), progPath, bytes.NewReader(prog), blockstore.CreateOptions{BlockSize: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	input := []byte("ab\ncd\nefg\nh\n")
	if _, err := n.FS().Create(context.Background(), "/in.txt", bytes.NewReader(input), blockstore.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	target, err := url.Parse(n.HTTPURL())
	if err != nil {
		t.Fatal(err)
	}
	fwd := httputil.NewSingleHostReverseProxy(target)
	var once sync.Once
	deleted := false
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/jobs" {
			once.Do(func() {
				_, err := n.FS().Remove(progPath, false)
				deleted = err == nil
			})
		}
		fwd.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	t.Setenv("SHOAL_CLUSTER_DIR", filepath.Join(t.TempDir(), "none"))
	t.Setenv("SHOAL_SECRET", "")
	t.Setenv("SHOAL_SECRET_FILE", "")
	var stdout, stderr bytes.Buffer
	args := []string{"myprog", "job", "run", "linelen", "--addr", proxy.URL, "--input", "/in.txt", "--output", "/out"}
	if code := run(context.Background(), args, &stdout, &stderr, lineLengths()); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !deleted {
		t.Fatal("the proxy did not delete the program")
	}
	for _, want := range []string{"already stored as " + progPath, "shipping it again", "shipped program "} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	n.SyncFiles(context.Background(), "/out")
	f, err := n.FS().Stat("/out/part-r-00000")
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := n.FS().WriteTo(context.Background(), f, &got); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(in, input, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	local := []string{"myprog", "job", "run", "linelen", "--local", "--input", in, "--output", out}
	if code := run(context.Background(), local, &stdout, &stderr, lineLengths()); code != 0 {
		t.Fatalf("--local: exit %d: %s", code, stderr.String())
	}
	want, err := os.ReadFile(filepath.Join(out, "part-r-00000"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("cluster output %q, --local %q", got.Bytes(), want)
	}
}

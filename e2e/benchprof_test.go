package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"shoal.dev/shoal/secret"
)

// profileDir is where the benchmarks write the agents' profiles:
// SHOAL_BENCH_PROFILE, or "" for none.
func profileDir() string { return os.Getenv("SHOAL_BENCH_PROFILE") }

// profile, when SHOAL_BENCH_PROFILE names a directory, takes from every
// agent a CPU profile of the next d (at most 110 s: the API's write
// timeout is 2 minutes) and its allocation profile now; the returned func
// waits for the CPU profiles and takes the allocation profiles again. The
// files are DIR/NAME-NODE.cpu.pprof, NAME-NODE.allocs-before.pprof and
// NAME-NODE.allocs.pprof; read them with `go tool pprof -top FILE` (for
// the allocations of the run, `-sample_index=alloc_space -base
// NAME-NODE.allocs-before.pprof NAME-NODE.allocs.pprof`). Without
// SHOAL_BENCH_PROFILE it does nothing.
func (c *benchCluster) profile(b *testing.B, name string, d time.Duration) (done func()) {
	dir := profileDir()
	if dir == "" {
		return func() {}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	sec, err := secret.Load(c.lc.secretFile())
	if err != nil {
		b.Fatal(err)
	}
	token := sec.APIToken()
	st := parseStatus(b, runScript(b, c.lc, "status").stdout)
	nodes := make([]string, 0, len(st))
	for node := range st {
		nodes = append(nodes, node)
	}
	sort.Strings(nodes)
	get := func(url, file string) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Errorf("profile %s: %v", url, err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(filepath.Join(dir, file))
		if err != nil {
			b.Error(err)
			return
		}
		defer f.Close()
		if _, err := io.Copy(f, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
			b.Errorf("profile %s: %d %v", url, resp.StatusCode, err)
		}
	}
	secs := max(1, min(110, int(d.Seconds())))
	var wg sync.WaitGroup
	for _, node := range nodes {
		url := st[node][1]
		get(url+"/debug/pprof/allocs", fmt.Sprintf("%s-%s.allocs-before.pprof", name, node))
		wg.Add(1)
		go func() {
			defer wg.Done()
			get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", url, secs), fmt.Sprintf("%s-%s.cpu.pprof", name, node))
		}()
	}
	return func() {
		wg.Wait()
		for _, node := range nodes {
			get(st[node][1]+"/debug/pprof/allocs", fmt.Sprintf("%s-%s.allocs.pprof", name, node))
		}
		b.Logf("profiles of %d agents (CPU over the first %d s) in %s", len(nodes), secs, dir)
	}
}

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestPutRaceProcess runs concurrent `shoal fs put` processes of one path
// without --force through different agents: exactly one exits 0, every
// other exits 1 with one line saying the path exists, and every agent
// serves the winner's bytes.
func TestPutRaceProcess(t *testing.T) {
	e, st := startFSEnv(t, 3)
	urls := []string{st["node1"][1], st["node2"][1], st["node3"][1]}
	const rounds, racers = 5, 4
	for r := 0; r < rounds; r++ {
		p := fmt.Sprintf("/race/%d", r)
		locals := make([]string, racers)
		datas := make([][]byte, racers)
		for i := range locals {
			datas[i] = []byte(strings.Repeat(fmt.Sprintf("round %d racer %d\n", r, i), 2000))
			locals[i] = filepath.Join(e.dir, fmt.Sprintf("race-%d-%d", r, i))
			if err := os.WriteFile(locals[i], datas[i], 0o600); err != nil {
				t.Fatal(err)
			}
		}
		results := make([]result, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range locals {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i] = e.cli(urls[(r+i)%len(urls)], "fs", "put", locals[i], p)
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, res := range results {
			switch {
			case res.code == 0 && winner >= 0:
				t.Fatalf("round %d: racers %d and %d both put %s", r, winner, i, p)
			case res.code == 0:
				winner = i
			case res.code != 1 || !strings.Contains(res.stderr, "exists") || strings.Count(strings.TrimSpace(res.stderr), "\n") > 0:
				t.Fatalf("round %d: racer %d: exit %d, stderr %q; want exit 1 and one line saying it exists", r, i, res.code, res.stderr)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no racer put %s: %+v", r, p, results)
		}
		for _, url := range urls {
			if err := e.catEquals(url, p, datas[winner]); err != nil {
				t.Fatalf("round %d: %v", r, err)
			}
		}
	}
}

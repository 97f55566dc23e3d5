package peer_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/scheduler"
)

// needTool returns the path of a command-line tool a test drives. Under
// CI=true a missing tool fails the test (.ci/run installs it); elsewhere
// the test skips and says how to get it.
func needTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (Debian package %s; .ci/console-tools.sh installs it)", name, pkg)
	}
	t.Skipf("skipped: %s is not installed (Debian package %s; .ci/console-tools.sh installs it)", name, pkg)
	return ""
}

// scrape fetches a node's /metrics (no token: it is open).
func scrape(t testing.TB, n *peer.Node) []byte {
	t.Helper()
	resp, err := http.Get(n.HTTPURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v: %s", resp.StatusCode, err, b)
	}
	return b
}

// series returns the value of one series (name with labels, as printed)
// in a scrape, or -1.
func series(scrape []byte, name string) float64 {
	sc := bufio.NewScanner(bytes.NewReader(scrape))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// TestMetrics runs a job and a put on a live cluster, checks that the
// counters moved as they should and agree with the disk, and that the
// scrape passes promtool check metrics (the Prometheus conventions: units,
// _total on counters, help on every family).
func TestMetrics(t *testing.T) {
	promtool := needTool(t, "promtool", "prometheus")
	c := clustertest.Start(t, 3, clustertest.Options{})
	put(t, c.Node(0), "/in/a.txt", corpus(7, 200<<10), blockstore.MinBlockSize)
	rec, err := c.Node(1).Submit(context.Background(), scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/in/a.txt"}, Output: "/out/wc", Reducers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if st := waitJob(t, c.Node(1), rec.ID, 60*time.Second); st.State != scheduler.StateSucceeded {
		t.Fatalf("job %s: %s", st.State, st.Error)
	}

	var attempts, fetched, served, spilled float64
	for i := range 3 {
		m := scrape(t, c.Node(i))
		attempts += series(m, `shoal_task_attempts_total{kind="map",result="succeeded"}`) + series(m, `shoal_task_attempts_total{kind="reduce",result="succeeded"}`)
		// Every node learns of the end, once.
		if v := series(m, `shoal_jobs_ended_total{state="succeeded"}`); v != 1 {
			clustertest.Eventually(t, 10*time.Second, func() error {
				if v := series(scrape(t, c.Node(i)), `shoal_jobs_ended_total{state="succeeded"}`); v != 1 {
					return fmt.Errorf("node %d: shoal_jobs_ended_total{state=\"succeeded\"} %v, want 1", i, v)
				}
				return nil
			})
		}
		fetched += series(m, "shoal_shuffle_fetched_bytes_total")
		served += series(m, "shoal_shuffle_served_bytes_total")
		spilled += series(m, "shoal_spill_bytes_total")
		if v := series(m, `shoal_members{state="alive"}`); v != 3 {
			t.Errorf("node %d: shoal_members{state=\"alive\"} = %v, want 3", i, v)
		}
		if v := series(m, "shoal_disk_free_bytes"); v <= 0 {
			t.Errorf("node %d: shoal_disk_free_bytes = %v", i, v)
		}
		if v := series(m, fmt.Sprintf(`shoal_build_info{goversion=%q,version=%q}`, runtime.Version(), peer.Version)); v != 1 {
			t.Errorf("node %d: no shoal_build_info", i)
		}
		if v := series(m, `shoal_http_requests_total{code="200",route="GET /metrics"}`); v < 0 && i == 0 {
			// The first scrape of a node is counted after it answers.
			m = scrape(t, c.Node(i))
			if v := series(m, `shoal_http_requests_total{code="200",route="GET /metrics"}`); v < 1 {
				t.Errorf("node %d: scrapes not counted by route: %v", i, v)
			}
		}
	}
	st, _ := c.Node(1).Scheduler().Status(rec.ID)
	if want := float64(st.Maps + st.Reducers); attempts != want {
		t.Errorf("%v succeeded attempts counted over the nodes, want %v (maps and reduces)", attempts, want)
	}
	if fetched != served || served <= 0 || spilled <= 0 {
		t.Errorf("shuffle bytes fetched %v, served %v (want equal and > 0); spilled %v", fetched, served, spilled)
	}

	// The block gauges are counted as blocks come and go; they must agree
	// with the disk.
	for i := range 3 {
		n := c.Node(i)
		clustertest.Eventually(t, 10*time.Second, func() error {
			list, err := n.LocalBlocks().List()
			if err != nil {
				return err
			}
			var size int64
			for _, b := range list {
				size += b.Size
			}
			m := scrape(t, n)
			if got := series(m, "shoal_blocks_stored"); got != float64(len(list)) {
				return fmt.Errorf("node %d: shoal_blocks_stored %v, %d on disk", i, got, len(list))
			}
			if got := series(m, "shoal_blocks_stored_bytes"); got != float64(size) {
				return fmt.Errorf("node %d: shoal_blocks_stored_bytes %v, %d on disk", i, got, size)
			}
			return nil
		})
	}

	live := scrape(t, c.Node(0))
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(live)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	checkDeploy(t, promtool, live)
}

// checkDeploy checks deploy/'s alert rules with promtool check rules, and
// that every shoal_ series the rules and the Grafana dashboard name is a
// family the live scrape has.
func checkDeploy(t *testing.T, promtool string, live []byte) {
	rules, dash := filepath.Join("..", "deploy", "shoal-alerts.yml"), filepath.Join("..", "deploy", "shoal-dashboard.json")
	if out, err := exec.Command(promtool, "check", "rules", rules).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	families := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) `).FindAllSubmatch(live, -1) {
		families[string(m[1])] = true
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	db, err := os.ReadFile(dash)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(db, &d); err != nil || len(d.Panels) == 0 {
		t.Fatalf("%s: %v (%d panels)", dash, err, len(d.Panels))
	}
	rb, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	text := string(rb)
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			text += "\n" + tg.Expr
		}
	}
	names := regexp.MustCompile(`shoal_[a-z_]+`).FindAllString(text, -1)
	if len(names) < 10 {
		t.Fatalf("only %d shoal_ series named in deploy/", len(names))
	}
	for _, name := range names {
		base := name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suf); ok && families[b] {
				base = b
			}
		}
		if !families[base] {
			t.Errorf("deploy/ names %s, which no agent exports", name)
		}
	}
}

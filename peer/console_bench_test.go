package peer_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"shoal.dev/shoal/client"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/scheduler"
)

// BenchmarkConsolePages measures the console's pages (their JSON, as the
// browser polls it) on 3 nodes holding SHOAL_CONSOLE_FILES files (default
// 10,000, in one directory) and SHOAL_CONSOLE_JOBS ended jobs in the
// history (default 1,000, real wordcount jobs). Each sub-benchmark reports
// the median and max of its requests in ms (the aim: under 100 ms).
func BenchmarkConsolePages(b *testing.B) {
	files := envInt(b, "SHOAL_CONSOLE_FILES", 10000)
	jobs := envInt(b, "SHOAL_CONSOLE_JOBS", 1000)
	c := clustertest.Start(b, 3, clustertest.Options{Configure: func(i int, cfg *peer.Config) { cfg.JobHistory = jobs }})
	n := c.Node(0)
	ctx := context.Background()

	// The files, 8 writers at once, one small block each.
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < files; i += 8 {
				_, err := c.Node(i%3).FS().Create(ctx, fmt.Sprintf("/bench/f%05d.txt", i), bytes.NewReader([]byte(fmt.Sprintf("line %d\n", i))), blockstore.CreateOptions{BlockSize: blockstore.MinBlockSize, Replication: 1})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	b.Logf("%d files stored in %s", files, time.Since(t0).Round(time.Millisecond))

	// The jobs, 8 in flight at once. A submit that fails is tried again
	// (at most 3 times, with another output): under load, output
	// reservations lapse (claim.ErrLost); the count is logged.
	t0 = time.Now()
	put(b, n, "/jobs/in.txt", []byte("a b a\nc a\n"), blockstore.MinBlockSize)
	ids := make([]string, jobs)
	var retried atomic.Int64
	sem := make(chan struct{}, 8)
	for i := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var rec scheduler.JobRecord
			var err error
			for try := range 3 {
				rec, err = c.Node(i%3).Submit(ctx, scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/jobs/in.txt"}, Output: fmt.Sprintf("/jobs/out%d-%d", i, try), Reducers: 1})
				if err == nil {
					break
				}
				if retried.Add(1) <= 3 {
					b.Logf("submit %d, try %d: %v", i, try, err)
				}
			}
			if err != nil {
				b.Error(err)
				return
			}
			ids[i] = rec.ID
			waitJob(b, c.Node(i%3), rec.ID, 10*time.Minute)
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	b.Logf("%d submits failed and were tried again", retried.Load())
	b.Logf("%d jobs run in %s", jobs, time.Since(t0).Round(time.Millisecond))
	clustertest.Eventually(b, time.Minute, func() error {
		if k := len(n.Scheduler().List()); k != jobs {
			return fmt.Errorf("%d jobs listed, want %d", k, jobs)
		}
		return nil
	})

	cookie := consoleSession(b, c)
	pages := []struct{ name, path string }{
		{"index", "/ui/"},
		{"cluster", "/ui/api/cluster"},
		{"files", "/ui/api/files?path=/bench"},
		{"files-last-page", fmt.Sprintf("/ui/api/files?path=/bench&from=f%05d.txt", max(files-100, 0))},
		{"files-root", "/ui/api/files?path=/"},
		{"file", "/ui/api/file?path=/bench/f00042.txt"},
		{"jobs", "/ui/api/jobs"},
		{"job", "/ui/api/jobs/" + ids[jobs/2]},
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			var times []time.Duration
			var size int
			for b.Loop() {
				t := time.Now()
				req, _ := http.NewRequest("GET", n.HTTPURL()+p.path, nil)
				req.AddCookie(cookie)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("%s: %d %s", p.path, resp.StatusCode, body)
				}
				times = append(times, time.Since(t))
				size = len(body)
			}
			sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
			b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms")
			b.ReportMetric(float64(times[len(times)-1].Microseconds())/1000, "max-ms")
			b.ReportMetric(float64(size), "bytes")
		})
	}
}

// consoleSession logs into node 0's console and returns the cookie.
func consoleSession(b *testing.B, c *clustertest.Cluster) *http.Cookie {
	n := c.Node(0)
	cl, err := client.New(n.HTTPURL(), c.Config(0).Secret.APIToken())
	if err != nil {
		b.Fatal(err)
	}
	link, err := cl.ConsoleLink(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(n.HTTPURL() + link.Path)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == "shoal_session" {
			return ck
		}
	}
	b.Fatal("no session cookie")
	return nil
}

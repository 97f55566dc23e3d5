package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/secret"
)

// webhdfsBenchBytes is the file size of BenchmarkWebHDFS:
// SHOAL_WEBHDFS_BENCH_BYTES, 128 MiB by default (1073741824 for 1 GiB).
func webhdfsBenchBytes() int64 {
	if s := os.Getenv("SHOAL_WEBHDFS_BENCH_BYTES"); s != "" {
		if v, err := strconv.ParseInt(s, 10, 64); err == nil && v > 0 {
			return v
		}
	}
	return 128 << 20
}

// BenchmarkWebHDFS puts and gets one file on 3 nodes (R=1) through
// WebHDFS (CREATE's two steps; OPEN, redirected to the first block's
// holder) and through `shoal fs put`/`get`, in the same run, through the
// same agent. Both write to and read from a local file.
func BenchmarkWebHDFS(b *testing.B) {
	n := webhdfsBenchBytes()
	dir := b.TempDir()
	input := benchInput(b, dir, n)
	c := startBenchCluster(b, 3)
	sec, err := secret.Load(filepath.Join(c.lc.dir, "secret"))
	if err != nil {
		b.Fatal(err)
	}
	tok := sec.APIToken()
	hc := &http.Client{Timeout: 30 * time.Minute}
	noFollow := &http.Client{Timeout: time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	webPut := func(b *testing.B, p string) {
		req, _ := http.NewRequest("PUT", c.url+"/webhdfs/v1"+p+"?op=CREATE&overwrite=true&replication=1&delegation="+tok, nil)
		res, err := noFollow.Do(req)
		if err != nil || res.StatusCode != http.StatusTemporaryRedirect {
			b.Fatalf("CREATE: %v %v", err, res)
		}
		res.Body.Close()
		f, err := os.Open(input)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		req, _ = http.NewRequest("PUT", res.Header.Get("Location"), f)
		req.ContentLength = n
		res, err = hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			b.Fatalf("CREATE data: %d %s", res.StatusCode, body)
		}
	}
	webGet := func(b *testing.B, p, out string) {
		res, err := hc.Get(c.url + "/webhdfs/v1" + p + "?op=OPEN&delegation=" + tok)
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("OPEN: %d", res.StatusCode)
		}
		f, err := os.Create(out)
		if err != nil {
			b.Fatal(err)
		}
		got, err := io.Copy(f, res.Body)
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		if err != nil || got != n {
			b.Fatalf("OPEN read %d of %d bytes: %v", got, n, err)
		}
	}

	want := fileSumTB(b, input)
	check := func(b *testing.B, out string) {
		if got := fileSumTB(b, out); got != want {
			b.Fatalf("%s differs from the input", out)
		}
		os.Remove(out)
	}
	for _, way := range []string{"shoal-fs", "webhdfs"} {
		p := "/bench/" + way
		subBench(b, "put/"+way, func(b *testing.B) {
			b.SetBytes(n)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				syncDisks()
				b.StartTimer()
				if way == "webhdfs" {
					webPut(b, p)
				} else {
					c.timedCLI(b, "fs", "put", input, p, "--replication", "1", "--force")
				}
			}
		})
		subBench(b, "get/"+way, func(b *testing.B) {
			b.SetBytes(n)
			out := filepath.Join(dir, "out-"+strings.ReplaceAll(way, "/", "-"))
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				syncDisks()
				b.StartTimer()
				if way == "webhdfs" {
					webGet(b, p, out)
				} else {
					c.timedCLI(b, "fs", "get", p, out)
				}
				b.StopTimer()
				check(b, out)
				b.StartTimer()
			}
		})
	}
}

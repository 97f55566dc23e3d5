package peer_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"shoal.dev/shoal/client"
	"shoal.dev/shoal/clustertest"
)

// BenchmarkFileIO puts a local file of SHOAL_BENCH_MB megabytes (default
// 64) through the resumable put into a 3-node cluster of this process, in
// 64 MB blocks, with R = 1 and R = 3, and reads each back through the API,
// as `shoal fs put` and `shoal fs get` do. Everything (client and the three
// agents, real HTTP and real libp2p streams) runs in this one process, so
// `-cpuprofile` shows where a put's and a get's time goes end to end;
// e2e BenchmarkFS measures the same operations with separate processes.
func BenchmarkFileIO(b *testing.B) {
	n := int64(envInt(b, "SHOAL_BENCH_MB", 64)) << 20
	src := filepath.Join(b.TempDir(), "input")
	if err := os.WriteFile(src, corpus(7, n), 0o600); err != nil {
		b.Fatal(err)
	}
	want := fileSum(b, src)
	c := clustertest.Start(b, 3, clustertest.Options{})
	clients := namedClients(b, c)
	ctx := context.Background()
	for _, r := range []int{1, 3} {
		p := fmt.Sprintf("/bench/r%d", r)
		b.Run(fmt.Sprintf("put/R=%d", r), func(b *testing.B) {
			b.SetBytes(n)
			for i := 0; i < b.N; i++ {
				f, err := os.Open(src)
				if err != nil {
					b.Fatal(err)
				}
				_, err = client.PutLocal(ctx, clients, p, f, n, client.PutOptions{BlockSize: 64 << 20, Replication: r, Force: true}, nil, nil)
				f.Close()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("get/R=%d", r), func(b *testing.B) {
			b.SetBytes(n)
			for i := 0; i < b.N; i++ {
				rd, err := client.OpenFile(ctx, clients, p, nil)
				if err != nil {
					b.Fatal(err)
				}
				h := sha256.New()
				_, err = io.Copy(h, rd)
				rd.Close()
				if err != nil {
					b.Fatal(err)
				}
				if got := fmt.Sprintf("%x", h.Sum(nil)); got != want {
					b.Fatalf("read back %s, put %s", got, want)
				}
			}
		})
	}
}

func fileSum(b *testing.B, p string) string {
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		b.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

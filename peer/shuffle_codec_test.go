package peer_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/scheduler"
	"shoal.dev/shoal/shuffle"
)

// compressSameHost has the in-process nodes (all on this host) compress
// map output as they would between hosts.
func compressSameHost(_ int, cfg *peer.Config) { cfg.ShuffleCompressSameHost = true }

// TestShuffleCompression: a job whose map output crosses the network
// compressed (s2, zstd) gives the sequential run's output, and reads fewer
// bytes off the wire than the same job plain; an unknown codec is refused.
func TestShuffleCompression(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Configure: compressSameHost})
	data := corpus(3, 900<<10)
	put(t, c.Node(0), "/sc/in.txt", data, blockstore.MinBlockSize)
	// distinct has no combiner: its shuffle is every line.
	want := sequential(t, "distinct", nil, map[string][]byte{"/sc/in.txt": data}, []string{"/sc/in.txt"}, 3)
	ctx := context.Background()
	for _, codec := range []string{"none", shuffle.CodecS2, shuffle.CodecZstd} {
		out := "/sc/out-" + codec
		rec, err := c.Node(1).Submit(ctx, scheduler.SubmitRequest{Name: "distinct", Inputs: []string{"/sc/in.txt"}, Output: out, Reducers: 3, MapOutputCompression: codec})
		if err != nil {
			t.Fatal(err)
		}
		st := waitJob(t, c.Node(2), rec.ID, 60*time.Second)
		if st.State != scheduler.StateSucceeded {
			t.Fatalf("%s: job %s: %s", codec, st.State, st.Error)
		}
		waitFiles(t, c.Node(0), out, 4)
		if got, _ := readParts(t, c.Node(0), out); !bytes.Equal(got, want) {
			t.Fatalf("%s: output (%d bytes) differs from sequential (%d bytes)", codec, len(got), len(want))
		}
		sh, remote, wire := st.Counters[job.REDUCE_SHUFFLE_BYTES], st.Counters[job.REDUCE_SHUFFLE_REMOTE_BYTES], st.Counters[job.REDUCE_SHUFFLE_WIRE_BYTES]
		t.Logf("%s: %d bytes shuffled, %d of them from other nodes, %d read off the wire", codec, sh, remote, wire)
		switch {
		case remote == 0 || remote > sh:
			t.Fatalf("%s: %d bytes shuffled, %d from other nodes", codec, sh, remote)
		case codec == "none" && wire < remote:
			t.Fatalf("plain: %d bytes from other nodes, %d on the wire", remote, wire)
		case codec != "none" && wire >= remote:
			t.Fatalf("%s: %d bytes on the wire for %d plain", codec, wire, remote)
		}
	}
	_, err := c.Node(0).Submit(ctx, scheduler.SubmitRequest{Name: "distinct", Inputs: []string{"/sc/in.txt"}, Output: "/sc/bad", MapOutputCompression: "lz4"})
	if err == nil {
		t.Fatal("map output compression lz4 was accepted")
	}
}

// TestShuffleSameHostPlain: between nodes on one host a job's map output
// goes plain though the job asks for it compressed (S2 by default): as
// many bytes on the wire as the plain segments hold, and the output still
// the sequential run's.
func TestShuffleSameHostPlain(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{})
	data := corpus(4, 600<<10)
	put(t, c.Node(0), "/sh/in.txt", data, blockstore.MinBlockSize)
	want := sequential(t, "distinct", nil, map[string][]byte{"/sh/in.txt": data}, []string{"/sh/in.txt"}, 3)
	rec, err := c.Node(1).Submit(context.Background(), scheduler.SubmitRequest{Name: "distinct", Inputs: []string{"/sh/in.txt"}, Output: "/sh/out", Reducers: 3})
	if err != nil {
		t.Fatal(err)
	}
	st := waitJob(t, c.Node(2), rec.ID, 60*time.Second)
	if st.State != scheduler.StateSucceeded {
		t.Fatalf("job %s: %s", st.State, st.Error)
	}
	waitFiles(t, c.Node(0), "/sh/out", 4)
	if got, _ := readParts(t, c.Node(0), "/sh/out"); !bytes.Equal(got, want) {
		t.Fatalf("output (%d bytes) differs from sequential (%d bytes)", len(got), len(want))
	}
	remote, wire := st.Counters[job.REDUCE_SHUFFLE_REMOTE_BYTES], st.Counters[job.REDUCE_SHUFFLE_WIRE_BYTES]
	if remote == 0 || wire < remote {
		t.Fatalf("%d bytes from other nodes on this host, %d on the wire: want them sent plain", remote, wire)
	}
}

// BenchmarkShuffleCompression runs terasort and wordcount (or the jobs of
// SHOAL_BENCH_JOBS, comma-separated) over SHOAL_BENCH_BYTES (default
// 64 MiB) on 3 in-process nodes with map output plain, s2 and zstd, in one
// run: each job's time, bytes shuffled and bytes on the wire. The outputs
// of the three must be equal.
func BenchmarkShuffleCompression(b *testing.B) {
	size := envInt(b, "SHOAL_BENCH_BYTES", 64<<20)
	c := clustertest.Start(b, 3, clustertest.Options{Configure: compressSameHost})
	ctx := context.Background()
	wait := func(req scheduler.SubmitRequest) (scheduler.Status, time.Duration) {
		t0 := time.Now()
		rec, err := c.Node(0).Submit(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		st := waitJob(b, c.Node(1), rec.ID, 60*time.Minute)
		if st.State != scheduler.StateSucceeded {
			b.Fatalf("%s: %s", st.State, st.Error)
		}
		return st, time.Since(t0)
	}
	jobs := []string{"terasort", "wordcount"}
	if s := os.Getenv("SHOAL_BENCH_JOBS"); s != "" {
		jobs = strings.Split(s, ",")
	}
	for _, name := range jobs {
		switch name {
		case "terasort":
			wait(scheduler.SubmitRequest{Name: "teragen", Params: map[string]string{"rows": fmt.Sprint(size / 100), "tasks": "6"}, Output: "/bench/tera", Replication: 1})
		case "wordcount":
			put(b, c.Node(1), "/bench/text.txt", corpus(9, int64(size)), 16<<20)
		default:
			b.Fatalf("SHOAL_BENCH_JOBS: %q is not terasort or wordcount", name)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, name := range jobs {
			in := map[string]string{"terasort": "/bench/tera", "wordcount": "/bench/text.txt"}[name]
			var first []byte
			for _, codec := range []string{"none", shuffle.CodecS2, shuffle.CodecZstd} {
				out := fmt.Sprintf("/bench/%s-%s-%d", name, codec, i)
				st, took := wait(scheduler.SubmitRequest{Name: name, Inputs: []string{in}, Output: out, Reducers: 3, Replication: 1, MapOutputCompression: codec})
				b.StopTimer()
				waitFiles(b, c.Node(2), out, 4)
				got, _ := readParts(b, c.Node(2), out)
				if first == nil {
					first = got
				} else if !bytes.Equal(got, first) {
					b.Fatalf("%s with %s: output differs from plain", name, codec)
				}
				sh, remote, wire := st.Counters[job.REDUCE_SHUFFLE_BYTES], st.Counters[job.REDUCE_SHUFFLE_REMOTE_BYTES], st.Counters[job.REDUCE_SHUFFLE_WIRE_BYTES]
				report(b, "%s %d MiB, map output %s: %v; %d bytes shuffled, %d from other nodes, %d on the wire (ratio %.3f)", name, size>>20, codec, took.Round(time.Millisecond), sh, remote, wire, float64(wire)/float64(max(remote, 1)))
				b.StartTimer()
			}
		}
	}
}

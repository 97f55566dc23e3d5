package peer_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/codec"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/scheduler"
)

// compressed returns data compressed with c: bzip2 by bzip2(1), which the
// test needs, the others by package codec.
func compressed(t *testing.T, c codec.Codec, data []byte) []byte {
	t.Helper()
	if c == codec.Bzip2 {
		cmd := exec.Command("bzip2", "-c")
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bzip2 (needed by this test): %v", err)
		}
		return out
	}
	var b bytes.Buffer
	w, err := codec.NewWriter(c, &b)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestCompressedInputAndOutput: wordcount over the same corpus stored as
// .txt, .gz, .bz2 and .zst (each of many blocks) gives the sequential
// run's output; a compressed file is one map task; --output-compression
// writes parts that decompress to the plain output; a corrupt .gz fails the
// job at once, naming the file.
func TestCompressedInputAndOutput(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{})
	text := corpus(7, 700<<10)
	want := sequential(t, "wordcount", nil, map[string][]byte{"/c/x.txt": text}, []string{"/c/x.txt"}, 3)
	ctx := context.Background()
	run := func(t *testing.T, input, out, comp string) scheduler.Status {
		t.Helper()
		rec, err := c.Node(1).Submit(ctx, scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{input}, Output: out, Reducers: 3, OutputCompression: comp})
		if err != nil {
			t.Fatal(err)
		}
		return waitJob(t, c.Node(2), rec.ID, 60*time.Second)
	}
	for _, cd := range []codec.Codec{codec.None, codec.Gzip, codec.Bzip2, codec.Zstd} {
		t.Run(string(cd)+"-in", func(t *testing.T) {
			data := text
			if cd != codec.None {
				data = compressed(t, cd, text)
			}
			path := "/c/x.txt" + cd.Ext()
			put(t, c.Node(0), path, data, blockstore.MinBlockSize)
			f, err := c.Node(0).FS().Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			st := run(t, path, "/c/out-"+string(cd)+"-in", "")
			if st.State != scheduler.StateSucceeded {
				t.Fatalf("job %s: %s", st.State, st.Error)
			}
			wantMaps := f.Blocks
			if cd != codec.None {
				wantMaps = 1
			}
			if st.Maps != wantMaps || f.Blocks < 2 {
				t.Fatalf("%d map tasks over %d blocks, want %d", st.Maps, f.Blocks, wantMaps)
			}
			waitFiles(t, c.Node(0), "/c/out-"+string(cd)+"-in", 4)
			got, _ := readParts(t, c.Node(0), "/c/out-"+string(cd)+"-in")
			if !bytes.Equal(got, want) {
				t.Fatalf("output (%d bytes) differs from the sequential run over the text (%d bytes)", len(got), len(want))
			}
		})
	}
	for _, cd := range []codec.Codec{codec.Gzip, codec.Zstd} {
		t.Run(string(cd)+"-out", func(t *testing.T) {
			out := "/c/out-" + string(cd) + "-out"
			st := run(t, "/c/x.txt", out, string(cd))
			if st.State != scheduler.StateSucceeded {
				t.Fatalf("job %s: %s", st.State, st.Error)
			}
			waitFiles(t, c.Node(0), out, 4)
			entries, err := c.Node(0).FS().List(out)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			for _, e := range entries {
				if e.Name == "_SUCCESS" {
					continue
				}
				if !strings.HasSuffix(e.Name, cd.Ext()) {
					t.Fatalf("output part %s has no %s extension", e.Name, cd.Ext())
				}
				var raw bytes.Buffer
				if _, err := c.Node(0).FS().WriteTo(ctx, *e.File, &raw); err != nil {
					t.Fatal(err)
				}
				zr, err := codec.NewReader(cd, &raw)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.Copy(&got, zr); err != nil {
					t.Fatalf("%s: %v", e.Name, err)
				}
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("decompressed output (%d bytes) differs from the plain (%d bytes)", got.Len(), len(want))
			}
		})
	}
	t.Run("corrupt", func(t *testing.T) {
		gz := compressed(t, codec.Gzip, text)
		for i := len(gz) / 2; i < len(gz)/2+64; i++ {
			gz[i] ^= 0xff
		}
		put(t, c.Node(0), "/c/bad.gz", gz, blockstore.MinBlockSize)
		st := run(t, "/c/bad.gz", "/c/out-bad", "")
		if st.State != scheduler.StateFailed || !strings.Contains(st.Error, "input /c/bad.gz: gzip data is corrupt") {
			t.Fatalf("job %s: %q, want failed naming the corrupt file", st.State, st.Error)
		}
		if n := st.Counters[job.NUM_FAILED_MAPS]; n != 1 {
			t.Fatalf("%d failed map attempts, want 1 (a corrupt file is not retried)", n)
		}
	})
	t.Run("bad codec", func(t *testing.T) {
		_, err := c.Node(0).Submit(ctx, scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/c/x.txt"}, Output: "/c/o", OutputCompression: "lz4"})
		if err == nil || !strings.Contains(err.Error(), `unknown compression codec "lz4"`) {
			t.Fatalf("err %v", err)
		}
	})
}

// TestPackedSmallFilesLocal: packed splits read only local blocks when
// every node is alive, and the output equals the sequential run's; a
// negative max split size packs nothing.
func TestPackedSmallFiles(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{})
	inputs, order := putMany(t, c, "/pk", 300)
	clustertest.Eventually(t, 30*time.Second, func() error {
		for _, nd := range c.Running() {
			if got := len(nd.FS().Files()); got < len(order) {
				return fmt.Errorf("a node knows %d of %d files", got, len(order))
			}
		}
		return nil
	})
	want := sequential(t, "wordcount", nil, inputs, order, 2)
	ctx := context.Background()
	for _, tc := range []struct {
		max       int64
		maxSplits int
	}{{0, 3}, {500, 300}, {-1, 300}} {
		t.Run(fmt.Sprint(tc.max), func(t *testing.T) {
			out := fmt.Sprintf("/pk-out%d", tc.max)
			start := time.Now()
			rec, err := c.Node(0).Submit(ctx, scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/pk"}, Output: out, Reducers: 2, MaxSplitBytes: tc.max,
				NoSpeculativeMaps: true}) // every launched map is one split: locality is exact
			if err != nil {
				t.Fatal(err)
			}
			if rec.Splits() > tc.maxSplits || (tc.max < 0 && rec.Splits() != 300) || (tc.max > 0 && rec.Splits() < 9) {
				t.Fatalf("%d splits with max split %d", rec.Splits(), tc.max)
			}
			st := waitJob(t, c.Node(1), rec.ID, 2*time.Minute)
			if st.State != scheduler.StateSucceeded {
				t.Fatalf("job %s: %s", st.State, st.Error)
			}
			// A node that looked dead for a moment (its probes missed on a
			// loaded machine) has its maps run elsewhere too.
			if flaps := memberFailures(c, start); flaps > 0 {
				t.Logf("%d member failures declared during the job: attempts not counted", flaps)
			} else if cs := st.Counters; cs[job.DATA_LOCAL_MAPS] != cs[job.TOTAL_LAUNCHED_MAPS] || cs[job.TOTAL_LAUNCHED_MAPS] != int64(rec.Splits()) {
				t.Fatalf("maps: %d launched, %d data-local, %d splits; %s", cs[job.TOTAL_LAUNCHED_MAPS], cs[job.DATA_LOCAL_MAPS], rec.Splits(), rerunTasks(c.Node(0), rec.ID))
			}
			waitFiles(t, c.Node(2), out, 3)
			got, _ := readParts(t, c.Node(2), out)
			if !bytes.Equal(got, want) {
				t.Fatalf("output (%d bytes) differs from sequential (%d bytes)", len(got), len(want))
			}
			t.Logf("max split %d: %d map tasks over %d files", tc.max, rec.Splits(), len(order))
		})
	}
}

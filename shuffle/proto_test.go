package shuffle

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/mesh"
	"shoal.dev/shoal/mesh/meshtest"
)

// testStore writes one map output, job "j1" task "m0", of 4 partitions.
func testStore(t *testing.T) (*Store, []pair) {
	t.Helper()
	store := NewStore(t.TempDir())
	rng := rand.New(rand.NewPCG(21, 22))
	pairs := randomPairs(rng, 2<<20, 2000)
	writeMap(t, MapConfig{Dir: store.Dir("j1"), Name: "m0", Partitions: 4, Partition: hashPartition(4), BufferBytes: MinBufferBytes}, pairs)
	return store, pairs
}

func readSegment(t *testing.T, r io.ReadCloser, n int64, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil || int64(len(b)) != n {
		t.Fatalf("read %d of %d bytes: %v", len(b), n, err)
	}
	return b
}

func TestStore(t *testing.T) {
	store, pairs := testStore(t)
	want := expected(pairs, hashPartition(4), 4)
	segs, err := store.Segments("j1", "m0")
	if err != nil || len(segs) != 4 {
		t.Fatalf("segments %v %v", segs, err)
	}
	for p := range 4 {
		r, n, err := store.Open("j1", "m0", p)
		b := readSegment(t, r, n, err)
		equalPairs(t, "partition", readAll(t, bytes.NewReader(b)), want[p])
	}
	for _, c := range []struct {
		job, task string
		part      int
		want      error
	}{
		{"j1", "m1", 0, ErrNotFound},
		{"j2", "m0", 0, ErrNotFound},
		{"..", "m0", 0, ErrInvalidName},
		{"j1", "../j1/m0", 0, ErrInvalidName},
		{"j1/..", "m0", 0, ErrInvalidName},
		{"", "m0", 0, ErrInvalidName},
		{"j1", "m0\x00", 0, ErrInvalidName},
	} {
		if _, _, err := store.Open(c.job, c.task, c.part); !errors.Is(err, c.want) {
			t.Errorf("open %q %q: %v, want %v", c.job, c.task, err, c.want)
		}
	}
	if _, _, err := store.Open("j1", "m0", 4); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("partition out of range: %v", err)
	}
	if store.Dir("../x") != "" || store.Dir("a/b") != "" {
		t.Error("Dir accepts a bad name")
	}

	// A flipped byte in the data is found at the end of its segment.
	data := store.Dir("j1") + "/m0.data"
	b, _ := os.ReadFile(data)
	b[segs[1].Offset+segs[1].Length/2] ^= 1
	os.WriteFile(data, b, 0o600)
	r, _, err := store.Open("j1", "m0", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt segment: %v", err)
	}
	r.Close()
	// A data file of the wrong size is found at open.
	os.WriteFile(data, b[:len(b)-1], 0o600)
	if _, _, err := store.Open("j1", "m0", 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short data file: %v", err)
	}

	os.MkdirAll(store.Dir("j2"), 0o700)
	os.MkdirAll(store.Root()+"/not a job", 0o700)
	if jobs, err := store.Jobs(); err != nil || !slices.Equal(jobs, []string{"j1", "j2"}) {
		t.Fatalf("jobs %v %v", jobs, err)
	}
	if err := store.Remove("j1", "m0"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Segments("j1", "m0"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after remove: %v", err)
	}
	for _, j := range []string{"j1", "j2", "j3"} {
		if err := store.RemoveJob(j); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.RemoveJob(".."); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("remove ..: %v", err)
	}
	if jobs, err := store.Jobs(); err != nil || len(jobs) != 0 {
		t.Fatalf("jobs %v %v", jobs, err)
	}
	if jobs, err := NewStore(store.Root() + "/missing").Jobs(); err != nil || len(jobs) != 0 {
		t.Fatalf("missing root: %v %v", jobs, err)
	}
}

func testNet(t *testing.T) (a, b *meshtest.Node, store *Store, srv *Server) {
	t.Helper()
	net := meshtest.New()
	a, err := net.Add("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err = net.Add("b")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	store, _ = testStore(t)
	srv = NewServer(store, nil)
	b.Handle(Protocol, srv.Handle)
	return a, b, store, srv
}

func TestFetch(t *testing.T) {
	a, _, store, srv := testNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for p := range 4 {
		r, n, err := store.Open("j1", "m0", p)
		local := readSegment(t, r, n, err)
		r, n, err = Fetch(ctx, a, "b", "j1", "m0", p)
		remote := readSegment(t, r, n, err)
		if !bytes.Equal(local, remote) {
			t.Fatalf("partition %d: fetched %d bytes, local %d", p, len(remote), len(local))
		}
	}
	if srv.Served.Load() != 4 {
		t.Fatalf("served %d", srv.Served.Load())
	}

	for _, c := range []struct {
		job, task string
		part      int
		want      error
	}{
		{"j1", "m9", 0, ErrNotFound},
		{"j9", "m0", 0, ErrNotFound},
	} {
		if _, _, err := Fetch(ctx, a, "b", c.job, c.task, c.part); !errors.Is(err, c.want) {
			t.Errorf("fetch %s/%s: %v", c.job, c.task, err)
		}
	}
	if _, _, err := Fetch(ctx, a, "b", "j1", "m0", 7); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("partition out of range: %v", err)
	}
	// Bad names are refused before dialing.
	noDial := mesh.DialerFunc(func(context.Context, string, string) (mesh.Stream, error) {
		t.Fatal("dialed")
		return nil, nil
	})
	for _, job := range []string{"..", "../etc", "a/b", ""} {
		if _, _, err := Fetch(ctx, noDial, "b", job, "m0", 0); !errors.Is(err, ErrInvalidName) {
			t.Errorf("job %q: %v", job, err)
		}
		if _, _, err := Fetch(ctx, noDial, "b", "j1", job, 0); !errors.Is(err, ErrInvalidName) {
			t.Errorf("task %q: %v", job, err)
		}
	}
	if _, _, err := Fetch(ctx, noDial, "b", "j1", "m0", -1); err == nil {
		t.Error("negative partition")
	}

	// A reader closed early resets the stream; the server copes.
	r, _, err := Fetch(ctx, a, "b", "j1", "m0", 0)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(r, make([]byte, 10))
	r.Close()
	r, n, err := Fetch(ctx, a, "b", "j1", "m0", 0)
	readSegment(t, r, n, err)
}

// rawRequest speaks the protocol by hand and returns the response header,
// or the error that ended the stream.
func rawRequest(t *testing.T, a *meshtest.Node, send []byte) (response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := a.Dial(ctx, "b", Protocol)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(20 * time.Second))
	st.Write(send)
	st.CloseWrite()
	var resp response
	return resp, mesh.ReadMsg(st, &resp, maxResponse)
}

func TestServerHostileRequests(t *testing.T) {
	a, _, _, srv := testNet(t)
	msg := func(v any) []byte {
		var b bytes.Buffer
		mesh.WriteMsg(&b, v)
		return b.Bytes()
	}
	// Names that would leave the store are refused by the server too.
	for _, req := range []request{
		{Job: "..", Task: "m0"},
		{Job: "j1", Task: "../../etc/passwd"},
		{Job: "/etc", Task: "passwd"},
		{Job: "j1", Task: "m0/../m0"},
	} {
		resp, err := rawRequest(t, a, msg(req))
		if err != nil || resp.Code != codeInvalid {
			t.Errorf("%+v: %+v %v", req, resp, err)
		}
	}
	// Garbage gets the stream reset, not a crash.
	huge := binary.BigEndian.AppendUint32(nil, 1<<31)
	for _, junk := range [][]byte{
		nil,
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		huge,
		append(binary.BigEndian.AppendUint32(nil, 5), 0xdf, 0xff, 0xff, 0xff, 0xff), // a map claiming 4G entries
		append(binary.BigEndian.AppendUint32(nil, 3), 0x93, 0x01, 0x02),             // an array, not a request
		msg(map[string]any{"job": 5, "task": []int{1}, "part": "x"}),
	} {
		if resp, err := rawRequest(t, a, junk); err == nil && resp.Err == "" {
			t.Errorf("junk %q answered %+v", junk, resp)
		}
	}
	if srv.Refused.Load() < 5 {
		t.Errorf("refused %d", srv.Refused.Load())
	}
	// The server still works.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, n, err := Fetch(ctx, a, "b", "j1", "m0", 1)
	readSegment(t, r, n, err)
}

func TestFetchCorruptAndCancel(t *testing.T) {
	a, b, store, _ := testNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Bytes damaged on the serving node fail the checksum at the end.
	data := store.Dir("j1") + "/m0.data"
	segs, _ := store.Segments("j1", "m0")
	buf, _ := os.ReadFile(data)
	buf[segs[2].Offset] ^= 0x40
	os.WriteFile(data, buf, 0o600)
	r, _, err := Fetch(ctx, a, "b", "j1", "m0", 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt: %v", err)
	}
	r.Close()

	// A server that stalls after the header: cancelling ctx ends the read.
	release := make(chan struct{})
	b.Handle("stall", func(from mesh.NodeName, st mesh.Stream) {
		defer st.Close()
		var req request
		mesh.ReadMsg(st, &req, maxRequest)
		mesh.WriteMsg(st, response{Length: 1000, Records: 1})
		st.Write([]byte{5})
		<-release
	})
	t.Cleanup(func() { close(release) }) // before the nodes close (cleanups run last first)
	stall := mesh.DialerFunc(func(ctx context.Context, node, _ string) (mesh.Stream, error) {
		return a.Dial(ctx, node, "stall")
	})
	fctx, fcancel := context.WithCancel(ctx)
	r, n, err := Fetch(fctx, stall, "b", "j1", "m0", 0)
	if err != nil || n != 1000 {
		t.Fatalf("fetch: %d %v", n, err)
	}
	if _, err := io.ReadFull(r, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	fcancel()
	if _, err := r.Read(make([]byte, 10)); !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: %v", err)
	}
	r.Close()

	// A peer that is down is an error, not a hang.
	b.SetDown(true)
	if _, _, err := Fetch(ctx, a, "b", "j1", "m0", 0); err == nil {
		t.Fatal("fetch from a node that is down")
	}
}

// TestImports keeps shuffle below the scheduler: std, msgpack, mesh,
// disk and klauspost's compression (the transport's codecs) only
// (meshtest in tests).
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		switch {
		case p == "shoal.dev/shoal/shuffle", p == "shoal.dev/shoal/mesh", p == "shoal.dev/shoal/disk", strings.HasPrefix(p, "github.com/vmihailenco/"),
			strings.HasPrefix(p, "github.com/klauspost/compress"):
		default:
			t.Errorf("shuffle depends on %s", p)
		}
	}
}

package tasklog

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

func read(t *testing.T, s *Store, e Entry) string {
	t.Helper()
	r, _, err := s.Open(e.Job, e.Task, e.Start, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBoundedHeadAndTail: a log keeps its first HeadBytes and last
// TailBytes, says how much it left out, and always ends with the error.
func TestBoundedHeadAndTail(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(0, 1_700_000_000_000_000_000)
	w, err := s.Create("job-1", "m-000001", start)
	if err != nil {
		t.Fatal(err)
	}
	head := bytes.Repeat([]byte("h"), HeadBytes)
	middle := bytes.Repeat([]byte("m"), 3*TailBytes+17)
	tail := bytes.Repeat([]byte("t"), TailBytes)
	// Concurrent writers of whole chunks (run with -race).
	w.Write(head)
	var wg sync.WaitGroup
	for i := 0; i < len(middle); i += 4096 {
		wg.Add(1)
		go func(p []byte) { defer wg.Done(); w.Write(p) }(middle[i:min(i+4096, len(middle))])
	}
	wg.Wait()
	w.Write(tail)
	ents, _ := s.List("job-1")
	if len(ents) != 1 || ents[0].Result != Running || ents[0].Size != HeadBytes {
		t.Fatalf("while running: %+v", ents)
	}
	w.Finish(Failed, errors.New("exit status 3"))
	w.Finish(Succeeded, nil) // ignored
	ents, _ = s.List("job-1")
	if len(ents) != 1 || ents[0].Result != Failed || !ents[0].Start.Equal(start) {
		t.Fatalf("after finish: %+v", ents)
	}
	got := read(t, s, ents[0])
	if !strings.HasPrefix(got, string(head)+"\n[… ") || !strings.Contains(got, "bytes of this log left out") {
		t.Fatalf("head or marker missing: %.80q", got[HeadBytes-10:])
	}
	if !strings.Contains(got, string(tail)+"\n") || !strings.HasSuffix(got, "attempt failed: exit status 3\n") {
		t.Fatalf("tail or error missing: %q", got[len(got)-200:])
	}
	if max := HeadBytes + TailBytes + 512; len(got) > max {
		t.Fatalf("log of %d bytes, bound %d", len(got), max)
	}
	if err := s.RemoveJob("job-1"); err != nil {
		t.Fatal(err)
	}
	if ents, _ := s.List("job-1"); len(ents) != 0 {
		t.Fatalf("after RemoveJob: %+v", ents)
	}
}

// TestLostOnReopen: an attempt still running when the agent stopped is
// listed as lost after a restart, and a log that is not here is
// ErrNotFound.
func TestLostOnReopen(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	w, err := s.Create("job-2", "r-00000", time.Unix(5, 0))
	if err != nil {
		t.Fatal(err)
	}
	w.Logf("fetched %d segments", 3)
	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := s2.List("job-2")
	if len(ents) != 1 || ents[0].Result != Lost {
		t.Fatalf("%+v", ents)
	}
	if got := read(t, s2, ents[0]); !strings.HasSuffix(got, "fetched 3 segments\n") {
		t.Fatalf("%q", got)
	}
	if _, _, err := s2.Open("job-2", "r-00000", time.Unix(6, 0), 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing log: %v", err)
	}
	if _, err := s2.Create("../x", "m-1", time.Now()); err == nil {
		t.Fatal("a job name with .. was accepted")
	}
	if ents, err := s2.List("../../etc"); err != nil || ents != nil {
		t.Fatalf("bad job name listed: %v %v", ents, err)
	}
}

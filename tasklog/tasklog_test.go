package tasklog

import (
	"bytes"
	"errors"
	"fmt"
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
	s, err := Open(t.TempDir(), Options{})
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
	s, _ := Open(dir, Options{})
	w, err := s.Create("job-2", "r-00000", time.Unix(5, 0))
	if err != nil {
		t.Fatal(err)
	}
	w.Logf("fetched %d segments", 3)
	s2, err := Open(dir, Options{})
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

// TestIOInName: an ended attempt's IO is listed from its log's name alone,
// survives a reopen, is written in the last line, and the log still opens
// by task and start; an ended log without IO (an older agent's) lists with
// none.
func TestIOInName(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, Options{})
	ios := map[string]*IO{
		"m-000001": {In: 1 << 20, Out: 4096, Locality: Local},
		"m-000002": {In: 77, Out: 0, Locality: Remote},
		"r-00000":  {In: 123456, Out: 789},
		"r-00001":  nil,
	}
	start := time.Unix(0, 1_700_000_000_000_000_000)
	for task, io := range ios {
		w, err := s.Create("job-3", task, start)
		if err != nil {
			t.Fatal(err)
		}
		if io != nil {
			w.SetIO(*io)
		}
		w.Finish(Succeeded, nil)
	}
	s2, _ := Open(dir, Options{})
	ents, err := s2.List("job-3")
	if err != nil || len(ents) != len(ios) {
		t.Fatalf("%v %+v", err, ents)
	}
	for _, e := range ents {
		want := ios[e.Task]
		if (e.IO == nil) != (want == nil) || want != nil && *e.IO != *want {
			t.Fatalf("%s: IO %+v, want %+v", e.Task, e.IO, want)
		}
		got := read(t, s2, e)
		if want != nil && !strings.Contains(got, fmt.Sprintf(" read %d bytes", want.In)) {
			t.Fatalf("%s: log %q", e.Task, got)
		}
	}
	// Names that are not a log's are skipped, not misread.
	for _, bad := range []string{"m-000001.5.succeeded.1-2-far.log", "m-000001.5.succeeded.1.log", "m-000001.5.succeeded.-1-2.log", "m-000001.5.succeeded.1-2.x.log"} {
		if _, ok := parseName("job-3", bad); ok {
			t.Errorf("%s parsed", bad)
		}
	}
}

// TestAdmitCutsTheLog: a log whose disk reaches the reserve stops growing
// (writes still succeed), asks for room a chunk at a time, and ends with
// how much it left out and why, the result and the error cut short; a
// refusal at Finish leaves out the tail.
func TestAdmitCutsTheLog(t *testing.T) {
	var mu sync.Mutex
	room := int64(3 * admitChunk) // bytes the fake disk admits
	asks := 0
	full := errors.New("node1: disk full: 10 MiB free, 1 GiB kept")
	admit := func(dir string, need int64) error {
		mu.Lock()
		defer mu.Unlock()
		asks++
		if !strings.HasSuffix(dir, "job-4") {
			t.Errorf("admit asked for %s", dir)
		}
		if need > room {
			return full
		}
		room -= need
		return nil
	}
	s, err := Open(t.TempDir(), Options{Admit: admit})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := s.Create("job-4", "m-000001", time.Unix(1, 0))
	line := []byte(strings.Repeat("x", 99) + "\n")
	for range 5000 { // 500,000 bytes; the disk admits 3 chunks, 655 lines each
		if n, err := w.Write(line); n != len(line) || err != nil {
			t.Fatalf("write: %d %v", n, err)
		}
	}
	w.SetIO(IO{In: 5, Out: 6})
	w.Finish(Failed, errors.New(strings.Repeat("e", 5000)))
	ents, _ := s.List("job-4")
	got := read(t, s, ents[0])
	if head := int64(strings.Count(got, string(line))) * 100; head != 3*(admitChunk/100)*100 {
		t.Errorf("%d bytes of lines kept, want the %d admitted", head, 3*(admitChunk/100)*100)
	}
	want := fmt.Sprintf("[… %d bytes of this log left out: %s …]\n", 500000-3*(admitChunk/100)*100, full)
	if !strings.Contains(got, want) || !strings.Contains(got, "read 5 bytes; wrote 6 bytes\n") || !strings.HasSuffix(got, ": "+strings.Repeat("e", MaxCutErrorBytes)+"…\n") {
		t.Errorf("end of the cut log: %q", got[max(0, len(got)-1500):])
	}
	if asks != 4 || ents[0].Result != Failed || ents[0].IO == nil {
		t.Errorf("%d asks (want 3 admitted and 1 refused); entry %+v", asks, ents[0])
	}

	// Room for the head, none for the tail at Finish.
	room = HeadBytes + admitChunk
	w, _ = s.Create("job-4", "m-000002", time.Unix(2, 0))
	w.Write(bytes.Repeat([]byte("h"), HeadBytes))
	w.Write(bytes.Repeat([]byte("t"), TailBytes+10))
	room = 0
	w.Finish(Succeeded, nil)
	ents, _ = s.List("job-4")
	got = read(t, s, ents[1])
	if strings.Contains(got, "t") && strings.Count(got, "t") > 20 || !strings.Contains(got, fmt.Sprintf("[… %d bytes of this log left out: ", TailBytes+10)) || !strings.HasSuffix(got, "attempt succeeded\n") {
		t.Errorf("a tail refused at Finish: %q", got[HeadBytes:])
	}
}

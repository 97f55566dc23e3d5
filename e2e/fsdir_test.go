package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestFSDirectories: fs put of a local directory tree, fs get of it back
// (identical), fs du and fs df; a put over existing files is refused
// before anything is stored; a job over the directory packs its small
// files into a few map tasks and gives the output of the same job run
// with --local and of one run unpacked.
func TestFSDirectories(t *testing.T) {
	e, st := startFSEnv(t, 3)
	url := st["node1"][1]
	src := filepath.Join(e.dir, "tree")
	want := map[string][]byte{}
	var total int64
	for i := 0; i < 120; i++ {
		rel := filepath.Join(fmt.Sprintf("d%d", i%3), fmt.Sprintf("sub%d", i%2), fmt.Sprintf("f%03d.txt", i))
		data := []byte(strings.Repeat(fmt.Sprintf("w%d common x%d\n", i%17, i%5), 1+i%40))
		if i == 7 {
			data = nil // an empty file
		}
		want[filepath.ToSlash(rel)] = data
		total += int64(len(data))
		p := filepath.Join(src, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.mustCLI(url, "fs", "put", src, "/tree")
	got := filepath.Join(e.dir, "back")
	e.mustCLI(st["node2"][1], "fs", "get", "/tree", got)
	n := 0
	filepath.WalkDir(got, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(got, p)
		b, _ := os.ReadFile(p)
		if w, ok := want[filepath.ToSlash(rel)]; !ok || !bytes.Equal(b, w) {
			t.Errorf("%s: %d bytes, want %d (known %v)", rel, len(b), len(w), ok)
		}
		n++
		return nil
	})
	if n != len(want) {
		t.Fatalf("got %d files back, want %d", n, len(want))
	}

	// du: the total, and each entry with replicas (R=3 on 3 nodes).
	du := e.mustCLI(url, "fs", "du", "-s", "/tree")
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^%d\s+%d\s+%d\s+/tree$`, total, 3*total, len(want))).MatchString(du) {
		t.Fatalf("fs du -s /tree:\n%s\nwant %d bytes, %d with replicas, %d files", du, total, 3*total, len(want))
	}
	du = e.mustCLI(url, "fs", "du", "/tree")
	if strings.Count(du, "/tree/d") != 3 || !strings.Contains(du, "/tree/d0/") {
		t.Fatalf("fs du /tree:\n%s", du)
	}
	e.mustCLI(url, "fs", "du", "--human", "/tree/d0/sub0/f000.txt")
	// df: every node, and the blocks held add up to 3 copies of each
	// non-empty file's one block.
	df := e.mustCLI(url, "fs", "df")
	m := regexp.MustCompile(`(?m)^total\s+\d+\s+\d+\s+\d+\s+(\d+)$`).FindStringSubmatch(df)
	if strings.Count(df, "node") < 3 || m == nil {
		t.Fatalf("fs df:\n%s", df)
	}
	if blocks, _ := strconv.Atoi(m[1]); blocks < 3*(len(want)-1) {
		t.Fatalf("fs df: %d blocks held, want at least %d:\n%s", blocks, 3*(len(want)-1), df)
	}
	e.mustCLI(url, "fs", "df", "--human")

	// Refusals change nothing.
	os.WriteFile(filepath.Join(src, "d0", "sub0", "f000.txt"), []byte("changed\n"), 0o644)
	if r := e.cli(url, "fs", "put", src, "/tree"); r.code == 0 || !strings.Contains(r.stderr, "exists (use --force") {
		t.Fatalf("put over existing files: exit %d, %q", r.code, r.stderr)
	}
	if b := e.mustCLI(url, "fs", "cat", "/tree/d0/sub0/f000.txt"); b != string(want["d0/sub0/f000.txt"]) {
		t.Fatal("a refused put changed a file")
	}
	if r := e.cli(url, "fs", "get", "/tree", got); r.code == 0 || !strings.Contains(r.stderr, "exists") {
		t.Fatalf("get into an existing dir: exit %d, %q", r.code, r.stderr)
	}
	os.Symlink("/dev/null", filepath.Join(src, "d1", "null"))
	if r := e.cli(url, "fs", "put", src, "/tree2"); r.code == 0 || !strings.Contains(r.stderr, "not a regular file") {
		t.Fatalf("put of a tree with a device: exit %d, %q", r.code, r.stderr)
	}
	if r := e.cli(url, "fs", "ls", "/tree2"); r.code == 0 {
		t.Fatalf("a refused put stored files:\n%s", r.stdout)
	}
	os.Remove(filepath.Join(src, "d1", "null"))
	e.mustCLI(url, "fs", "put", "--force", src, "/tree")
	if b := e.mustCLI(url, "fs", "cat", "/tree/d0/sub0/f000.txt"); b != "changed\n" {
		t.Fatal("put --force did not replace the file")
	}

	// A job over the tree: packed into few map tasks; equal to --local and
	// to an unpacked run.
	var locals []string
	filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			locals = append(locals, p)
		}
		return err
	})
	lout := filepath.Join(e.dir, "lout")
	shoal(t, nil, "job", "run", "wordcount", "--local", "--input", strings.Join(locals, ","), "--output", lout, "--reducers", "1")
	wantOut, _ := os.ReadFile(filepath.Join(lout, "part-r-00000"))
	// --local over the directory reads the same files, leaving out names
	// starting with "_" as a cluster input directory does.
	os.WriteFile(filepath.Join(src, "d1", "_SUCCESS"), []byte("not input\n"), 0o644)
	os.MkdirAll(filepath.Join(src, "_logs"), 0o755)
	os.WriteFile(filepath.Join(src, "_logs", "x.txt"), []byte("not input\n"), 0o644)
	dout := filepath.Join(e.dir, "dout")
	shoal(t, nil, "job", "run", "wordcount", "--local", "--input", src, "--output", dout, "--reducers", "1")
	if b, _ := os.ReadFile(filepath.Join(dout, "part-r-00000")); len(wantOut) == 0 || !bytes.Equal(b, wantOut) {
		t.Fatalf("--local over the directory: %d bytes, want %d (the files named)", len(b), len(wantOut))
	}
	for _, tc := range []struct {
		max     string
		maxMaps int
		minMaps int
	}{{"0", 3, 1}, {"-1", 200, 119}, {"1000", 119, 4}} {
		out := "/tree-out" + tc.max
		r := e.cli(url, "job", "run", "wordcount", "--input", "/tree", "--output", out, "--reducers", "1", "--max-split-bytes", tc.max)
		if r.code != 0 {
			t.Fatalf("job: %s", r.stderr)
		}
		mm := regexp.MustCompile(`submitted \S+: (\d+) maps`).FindStringSubmatch(r.stderr)
		if mm == nil {
			t.Fatalf("no map count in %q", r.stderr)
		}
		if maps, _ := strconv.Atoi(mm[1]); maps > tc.maxMaps || maps < tc.minMaps {
			t.Fatalf("--max-split-bytes %s: %d maps, want %d to %d", tc.max, maps, tc.minMaps, tc.maxMaps)
		}
		if b := e.mustCLI(url, "fs", "cat", out+"/part-r-00000"); b != string(wantOut) {
			t.Fatalf("--max-split-bytes %s: output differs from --local", tc.max)
		}
	}
}

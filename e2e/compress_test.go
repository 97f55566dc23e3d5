package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// compressWith runs a real compression tool (gzip, bzip2, zstd) on a local
// file, keeping it, and returns the compressed file's path.
func compressWith(t *testing.T, tool, ext, path string) string {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s is not installed (.ci/webhdfs-clients.sh installs it)", tool)
	}
	out := path + ext
	cmd := exec.Command("sh", "-c", tool+" -c < \"$1\" > \"$2\"", "sh", path, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", tool, err, b)
	}
	return out
}

// TestCompressedWordCount: wordcount over one corpus stored as .txt, .gz,
// .bz2 and .zst (written by gzip, bzip2 and zstd) gives identical output,
// the output of `job run --local`; --output-compression zstd writes
// part-r-NNNNN.zst that zstd -d turns into the plain output.
func TestCompressedWordCount(t *testing.T) {
	e, st := startFSEnv(t, 3)
	url := st["node3"][1]
	plain := e.genText("corpus.txt", "2MB", 5)
	local := filepath.Join(e.dir, "local")
	shoal(t, nil, "job", "run", "wordcount", "--local", "--input", plain, "--output", local, "--reducers", "2")
	var want strings.Builder
	for _, p := range []string{"part-r-00000", "part-r-00001"} {
		b, err := os.ReadFile(filepath.Join(local, p))
		if err != nil {
			t.Fatal(err)
		}
		want.Write(b)
	}
	files := map[string]string{".txt": plain}
	for _, c := range [][2]string{{"gzip", ".gz"}, {"bzip2", ".bz2"}, {"zstd", ".zst"}} {
		files[c[1]] = compressWith(t, c[0], c[1], plain)
	}
	for ext, f := range files {
		name := "/z/corpus" + ext
		e.mustCLI(url, "fs", "put", f, name, "--block-size", "256K")
		out := "/z/out" + strings.ReplaceAll(ext, ".", "-")
		e.mustCLI(url, "job", "run", "wordcount", "--input", name, "--output", out, "--reducers", "2")
		if got := e.mustCLI(url, "fs", "cat", out+"/part-*"); got != want.String() {
			t.Fatalf("wordcount over %s (%d bytes) differs from the --local run over the text (%d bytes)", ext, len(got), want.Len())
		}
		// The local runner reads the compressed file too.
		lout := filepath.Join(e.dir, "local"+strings.ReplaceAll(ext, ".", "-"))
		shoal(t, nil, "job", "run", "wordcount", "--local", "--input", f, "--output", lout, "--reducers", "2")
		var lgot strings.Builder
		for _, p := range []string{"part-r-00000", "part-r-00001"} {
			b, _ := os.ReadFile(filepath.Join(lout, p))
			lgot.Write(b)
		}
		if lgot.String() != want.String() {
			t.Fatalf("job run --local over %s differs from the plain run", ext)
		}
	}

	e.mustCLI(url, "job", "run", "wordcount", "--input", "/z/corpus.txt", "--output", "/z/zout", "--reducers", "2", "--output-compression", "zstd")
	ls := e.mustCLI(url, "fs", "ls", "/z/zout")
	if !strings.Contains(ls, "part-r-00000.zst") || !strings.Contains(ls, "part-r-00001.zst") {
		t.Fatalf("compressed output:\n%s", ls)
	}
	var got strings.Builder
	for _, p := range []string{"part-r-00000.zst", "part-r-00001.zst"} {
		dst := filepath.Join(e.dir, p)
		e.mustCLI(url, "fs", "get", "/z/zout/"+p, dst)
		if _, err := exec.LookPath("zstd"); err != nil {
			t.Skip("zstd is not installed")
		}
		b, err := exec.Command("zstd", "-d", "-c", dst).Output()
		if err != nil {
			t.Fatalf("zstd -d %s: %v", p, err)
		}
		got.Write(b)
	}
	if got.String() != want.String() {
		t.Fatalf("zstd -d of the output (%d bytes) differs from the plain output (%d bytes)", got.Len(), want.Len())
	}
	// --local writes compressed parts too.
	lz := filepath.Join(e.dir, "localz")
	shoal(t, nil, "job", "run", "wordcount", "--local", "--input", plain, "--output", lz, "--reducers", "2", "--output-compression", "gzip")
	if _, err := os.Stat(filepath.Join(lz, "part-r-00000.gz")); err != nil {
		t.Fatalf("--local --output-compression gzip: %v", err)
	}
	if r := e.cli(url, "job", "run", "wordcount", "--input", "/z/corpus.txt", "--output", "/z/bad", "--output-compression", "lz4"); r.code != 2 || !strings.Contains(r.stderr, `unknown compression codec "lz4"`) {
		t.Fatalf("--output-compression lz4: exit %d, %q", r.code, r.stderr)
	}
}

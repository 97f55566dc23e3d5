package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The real WebHDFS clients, installed by .ci/webhdfs-clients.sh (which
// .ci/run calls): Debian's python3-fsspec and python3-pandas for
// /usr/bin/python3, and Node's webhdfs package under testdata/webhdfs.
const systemPython = "/usr/bin/python3"

func webhdfsDir() string { return filepath.Join(repoRoot, "e2e", "testdata", "webhdfs") }

// needPythonClients skips unless fsspec, pandas and requests import.
func needPythonClients(t *testing.T) {
	out, err := exec.Command(systemPython, "-c", "import fsspec, pandas, requests").CombinedOutput()
	if err != nil {
		t.Skipf("fsspec, pandas or requests cannot be imported by %s (%v: %s); .ci/webhdfs-clients.sh installs them", systemPython, err, bytes.TrimSpace(out))
	}
}

func needNodeClient(t *testing.T) string {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; .ci/webhdfs-clients.sh installs it")
	}
	if _, err := os.Stat(filepath.Join(webhdfsDir(), "node_modules", "webhdfs")); err != nil {
		t.Skip("the webhdfs npm package is not installed under e2e/testdata/webhdfs; .ci/webhdfs-clients.sh installs it")
	}
	return node
}

// csvTable is a CSV of rows rows with text, whole and decimal columns.
func csvTable(rows int) []byte {
	var b bytes.Buffer
	b.WriteString("id,name,count,score\n")
	words := strings.Fields(string(genText(5, 4000)))
	for i := range rows {
		fmt.Fprintf(&b, "%d,%s,%d,%.3f\n", i, words[i%len(words)], (i*7919)%1000, float64(i%997)/7)
	}
	return b.Bytes()
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// farNode returns the URL of a node that holds none of the data blocks of
// paths, nor owns on the ring any of the extra keys. (A manifest, the
// file's block list, is metadata every reader fetches once from any
// replica; it may be anywhere.)
func farNode(t *testing.T, e *fsEnv, st map[string][2]string, paths []string, extra []string) (string, string) {
	t.Helper()
	any := st["node1"][1]
	cl := clientFor(t, e.lc, any)
	busy := map[string]bool{}
	for _, p := range paths {
		s, err := cl.StatBlocks(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range s.Blocks {
			if b.Manifest {
				continue
			}
			for _, h := range b.Holders {
				busy[h] = true
			}
		}
	}
	for _, k := range extra {
		for _, o := range strings.Fields(e.mustCLI(any, "ring", "owners", k, "-n", "1")) {
			busy[o] = true
		}
	}
	var names []string
	for n := range st {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if !busy[n] {
			return n, st[n][1]
		}
	}
	t.Fatalf("every node holds a block of %v or owns %v: %v", paths, extra, busy)
	return "", ""
}

// TestWebHDFSRealClients: fsspec (ls, random-access reads, a 20 MB write,
// rm), pandas read_csv over webhdfs:// and Node's webhdfs (upload and
// download) against agent processes, with the cluster's token from
// `shoal token`, through a node that holds none of the files' blocks.
func TestWebHDFSRealClients(t *testing.T) {
	needPythonClients(t)
	node := needNodeClient(t)
	e, st := startFSEnv(t, 4)
	any := st["node1"][1]
	token := strings.TrimSpace(e.mustCLI(any, "token"))
	if len(token) != 48 {
		t.Fatalf("shoal token printed %q", token)
	}

	inTxt := filepath.Join(e.dir, "in.txt")
	inData := genText(21, 3<<20+17)
	os.WriteFile(inTxt, inData, 0o600)
	csv := filepath.Join(e.dir, "table.csv")
	os.WriteFile(csv, csvTable(20000), 0o600)
	e.mustCLI(any, "fs", "put", inTxt, "/data/in.txt", "-r", "1")
	e.mustCLI(any, "fs", "put", csv, "/data/table.csv", "-r", "1")
	nodeUp := filepath.Join(e.dir, "up.bin")
	upData := genBinary(22, 5<<20+3)
	os.WriteFile(nodeUp, upData, 0o600)

	// One block each (below 128 MB): the upload's block lands on the ring
	// owner of its SHA-256.
	farName, far := farNode(t, e, st, []string{"/data/in.txt", "/data/table.csv"}, []string{sha(upData)})
	u, err := url.Parse(far)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("clients talk to %s (%s), which holds none of the data blocks", farName, far)

	// fsspec and pandas.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bigOut := filepath.Join(e.dir, "big.bin")
	py := exec.CommandContext(ctx, systemPython, filepath.Join(webhdfsDir(), "fsspec_check.py"), u.Hostname(), u.Port(), token, "7")
	py.Env = append(os.Environ(), "IN_TXT="+inTxt, "TABLE_CSV="+csv, "BIG_OUT="+bigOut)
	var pyErr bytes.Buffer
	py.Stderr = &pyErr
	stdin, _ := py.StdinPipe()
	stdout, _ := py.StdoutPipe()
	if err := py.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "written" {
		py.Wait()
		t.Fatalf("fsspec: %q: %s", lines.Text(), pyErr.String())
	}
	// The 20 MB fsspec wrote (CREATE then APPENDs) reads back the same
	// through `shoal fs get`, with the replication it asked.
	big, _ := os.ReadFile(bigOut)
	if len(big) != 20<<20 {
		t.Fatalf("fsspec's local copy has %d bytes", len(big))
	}
	if err := e.catEquals(st["node2"][1], "/data/big.bin", big); err != nil {
		t.Fatal(err)
	}
	s, err := clientFor(t, e.lc, any).StatBlocks(ctx, "/data/big.bin")
	if err != nil || s.File.Replication != 1 || s.File.Blocks < 4 {
		t.Fatalf("fsspec's file: %+v %v", s.File, err)
	}
	io.WriteString(stdin, "go on\n")
	if !lines.Scan() || lines.Text() != "ok" {
		py.Wait()
		t.Fatalf("fsspec: %q: %s", lines.Text(), pyErr.String())
	}
	if err := py.Wait(); err != nil {
		t.Fatalf("fsspec: %v: %s", err, pyErr.String())
	}
	if r := e.cli(any, "fs", "stat", "/data/big.bin"); r.code == 0 {
		t.Fatal("fsspec's rm left the file")
	}

	// Node's webhdfs: upload, download, byte-identical.
	down := filepath.Join(e.dir, "down.bin")
	js := exec.CommandContext(ctx, node, filepath.Join(webhdfsDir(), "node_check.js"), u.Hostname(), u.Port(), token, nodeUp, "/node/up.bin", down)
	js.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(webhdfsDir(), "node_modules"))
	if out, err := js.CombinedOutput(); err != nil {
		t.Fatalf("node webhdfs: %v: %s", err, out)
	}
	got, _ := os.ReadFile(down)
	if !bytes.Equal(got, upData) {
		t.Fatalf("node webhdfs downloaded %d bytes that differ from the %d uploaded", len(got), len(upData))
	}
	if err := e.catEquals(any, "/node/up.bin", upData); err != nil {
		t.Fatal(err)
	}
	// Its block is on another node: the download was redirected or read
	// from the replica.
	s, err = clientFor(t, e.lc, any).StatBlocks(ctx, "/node/up.bin")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range s.Blocks[1:] {
		if slices.Contains(b.Holders, farName) {
			t.Fatalf("block %s of the upload is on %s", b.ID[:12], farName)
		}
	}
}

// TestFSMv: `shoal fs mv` renames a file and moves a directory, keeping
// the bytes; a missing source is a one-line error.
func TestFSMv(t *testing.T) {
	e, st := startFSEnv(t, 2)
	a, b := st["node1"][1], st["node2"][1]
	data := genText(3, 300<<10)
	local := filepath.Join(e.dir, "f")
	os.WriteFile(local, data, 0o600)
	e.mustCLI(a, "fs", "put", local, "/x/f")
	if out := e.mustCLI(b, "fs", "mv", "/x/f", "/y/g"); out != "moved /x/f to /y/g\n" {
		t.Fatalf("mv printed %q", out)
	}
	if err := e.catEquals(a, "/y/g", data); err != nil {
		t.Fatal(err)
	}
	e.mustCLI(a, "fs", "put", local, "/z/h")
	if out := e.mustCLI(a, "fs", "mv", "/y", "/z"); out != "moved /y to /z/y\n" {
		t.Fatalf("mv into a directory printed %q", out)
	}
	if err := e.catEquals(b, "/z/y/g", data); err != nil {
		t.Fatal(err)
	}
	if ls := e.mustCLI(a, "fs", "ls", "/"); strings.Contains(ls, "x") || strings.Contains(ls, " y") || !strings.Contains(ls, "z") {
		t.Fatalf("ls / after moves:\n%s", ls)
	}
	r := e.cli(a, "fs", "mv", "/nothing", "/else")
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "mv /nothing /else: no such file") {
		t.Fatalf("mv of nothing: exit %d, %q", r.code, r.stderr)
	}
	if r := e.cli(a, "fs", "mv", "/only"); r.code != 2 {
		t.Fatalf("mv with one argument: exit %d, %q", r.code, r.stderr)
	}
}

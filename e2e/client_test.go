package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/client"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/job/builtin"
	"shoal.dev/shoal/secret"
)

// TestClientLinksNoEngine: a program that imports the light client links
// neither libp2p, memberlist nor bbolt.
func TestClientLinksNoEngine(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", module+"/client")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, heavy := range []string{"libp2p", "memberlist", "bbolt", module + "/peer", module + "/scheduler"} {
			if strings.Contains(dep, heavy) {
				t.Errorf("client depends on %s", dep)
			}
		}
	}
}

// TestBinaryLinksOnlyTCP: the shoal binary links go-libp2p's TCP
// transport only. The root go-libp2p package's defaults link QUIC,
// WebTransport, WebRTC, WebSocket, UPnP and the resource manager whether a
// host uses them or not, and their package initialisation ran at every
// start of the binary, each CLI command included (p2p/host.go).
func TestBinaryLinksOnlyTCP(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", module)
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/libp2p/go-libp2p" {
			t.Errorf("shoal depends on the root go-libp2p package")
		}
		for _, unused := range []string{"quic-go", "/pion/", "webtransport", "/transport/websocket", "resource-manager", "go.uber.org/fx"} {
			if strings.Contains(dep, unused) {
				t.Errorf("shoal depends on %s", dep)
			}
		}
	}
}

// buildTags are the build tags of every shoal binary: the Makefile's TAGS,
// which this package's own build of the binary uses too.
const buildTags = "urfave_cli_no_docs"

// TestBuildTagsLeaveOutDocs: the Makefile builds shoal (build, release)
// with buildTags, and with them the binary links none of urfave/cli's
// man-page and Markdown generators, whose Markdown parser compiled its
// tables at every command's start.
func TestBuildTagsLeaveOutDocs(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mk), "\nTAGS    := "+buildTags+"\n") {
		t.Errorf("the Makefile's TAGS is not %q", buildTags)
	}
	if n := strings.Count(string(mk), "$(GO) build -tags '$(TAGS)' "); n != 2 {
		t.Errorf("%d of the Makefile's 2 builds (build, release) pass -tags '$(TAGS)'", n)
	}
	cmd := exec.Command("go", "list", "-deps", "-tags", buildTags, module)
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "md2man") || strings.Contains(dep, "blackfriday") {
			t.Errorf("shoal built with -tags %s depends on %s", buildTags, dep)
		}
	}
}

// TestClientRunsAJob: the light client puts an input, runs wordcount,
// waits for it and reads its output, which equals the sequential run's;
// ShipProgram stores a program once.
func TestClientRunsAJob(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sec := secret.Generate()
	c := clustertest.Start(t, 3, clustertest.Options{Secret: sec})
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte(sec.String()+"\n"), 0o600)
	token, err := client.TokenFromSecretFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(c.Node(1).HTTPURL(), token)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("the quick brown fox jumps over the lazy dog the end\n", 2000)
	if _, err := cl.Put(ctx, "/in/text", strings.NewReader(text), int64(len(text)), client.PutOptions{BlockSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	st, err := cl.Submit(ctx, client.SubmitRequest{Name: "wordcount", Inputs: []string{"/in"}, Output: "/out", Reducers: 2})
	if err != nil {
		t.Fatal(err)
	}
	st, err = cl.Wait(ctx, st.ID, 50*time.Millisecond)
	if err != nil || st.State != client.StateSucceeded {
		t.Fatalf("wait: %+v %v", st, err)
	}
	var got bytes.Buffer
	for _, part := range []string{"part-r-00000", "part-r-00001"} {
		r, err := cl.Open(ctx, "/out/"+part)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(&got, r)
		r.Close()
	}
	want := sequentialWordcount(t, text, 2)
	if got.String() != want {
		t.Errorf("output %q, want the sequential run's %q", got.String(), want)
	}
	if st.Counters["MAP_INPUT_RECORDS"] != 2000 {
		t.Errorf("counters %v", st.Counters)
	}
	_, err = cl.Stat(ctx, "/nope")
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusNotFound {
		t.Errorf("stat of a missing file: %v", err)
	}
	prog := filepath.Join(t.TempDir(), "prog")
	os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755)
	sum1, up1, err1 := cl.ShipProgram(ctx, prog)
	sum2, up2, err2 := cl.ShipProgram(ctx, prog)
	if err1 != nil || err2 != nil || !up1 || up2 || sum1 != sum2 {
		t.Errorf("ship twice: %s %v %v; %s %v %v", sum1, up1, err1, sum2, up2, err2)
	}
	if _, err := cl.Remove(ctx, "/in", true); err != nil {
		t.Error(err)
	}
}

// sequentialWordcount is wordcount's output, its parts in order, run in
// this process.
func sequentialWordcount(t *testing.T, text string, reducers int) string {
	t.Helper()
	reg := job.NewRegistry()
	builtin.Register(reg)
	j, err := reg.Resolve("wordcount", nil)
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string]*bytes.Buffer{}
	in := job.Input{Path: "/in/text", Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(text)), nil }}
	_, err = job.RunSequential(context.Background(), j, "seq", map[string]string{}, []job.Input{in}, reducers, func(name string) (io.WriteCloser, error) {
		parts[name] = &bytes.Buffer{}
		return nopCloser{parts[name]}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for p := 0; p < reducers; p++ {
		out.WriteString(parts[job.ReduceOutputName(p)].String())
	}
	return out.String()
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

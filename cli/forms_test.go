package cli

import (
	"bytes"
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	ucli "github.com/urfave/cli/v2"

	"shoal.dev/shoal/secret"
)

// sampleArgs are the positional arguments and required flags that get each
// client command as far as its first API call. Every command of the app
// must be listed (TestEveryCommandListed), so a new one is tested too.
var sampleArgs = map[string][]string{
	"agent":        nil, // not a client command
	"members":      {},
	"drain":        {},
	"ring owners":  {"k"},
	"p2p ping":     {"node1"},
	"fs put":       {"LOCALFILE", "/x"},
	"fs get":       {"/x", "-"},
	"fs cat":       {"/x"},
	"fs getmerge":  {"/d", "OUTFILE"},
	"fs ls":        {"/"},
	"fs rm":        {"/x"},
	"fs stat":      {"/x"},
	"fs mv":        {"/x", "/y"},
	"fs conflicts": {},
	"fs du":        {"/"},
	"fs df":        {},
	"job run":      {"wordcount", "--input", "/in", "--output", "/out"},
	"job status":   {"j1"},
	"job wait":     {"j1"},
	"job kill":     {"j1"},
	"job counters": {"j1"},
	"job logs":     {"j1"},
	"ui":           {},
	"job list":     {},
	"streaming":    {"-input", "/in", "-output", "/out", "-mapper", "cat"},
	"gen text":     nil, // local
	"keygen":       nil, // local
	"token":        nil, // local: TestTokenEveryForm
	"version":      nil, // local
	"help":         nil,
}

// leafCommands lists every command path of the app ("fs put").
func leafCommands(cmds []*ucli.Command, prefix string) []string {
	var out []string
	for _, c := range cmds {
		p := strings.TrimSpace(prefix + " " + c.Name)
		if len(c.Subcommands) > 0 {
			out = append(out, leafCommands(c.Subcommands, p)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

func TestEveryCommandListed(t *testing.T) {
	app := newApp(&bytes.Buffer{}, &bytes.Buffer{}, nil)
	for _, p := range leafCommands(app.Commands, "") {
		if _, ok := sampleArgs[p]; !ok {
			t.Errorf("command %q has no entry in sampleArgs", p)
		}
	}
}

// recorder is a stand-in agent that answers every call with an empty JSON
// object and records who called with which token.
type recorder struct {
	mu     sync.Mutex
	calls  int
	tokens []string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.calls++
	r.tokens = append(r.tokens, strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer "))
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if strings.HasSuffix(req.URL.Path, "/members") || strings.HasSuffix(req.URL.Path, "/jobs") || strings.HasSuffix(req.URL.Path, "/glob") || strings.HasSuffix(req.URL.Path, "/list") {
		w.Write([]byte("[]"))
		return
	}
	if req.URL.Path == "/v1/drain" {
		w.Write([]byte(`{"node":"n1","draining":true,"blocks_left":0,"done":true}`))
		return
	}
	if req.Method == "GET" && req.URL.Path == "/v1/fs/file" {
		w.Header().Set("Content-Type", "application/octet-stream")
		return
	}
	w.Write([]byte(`{"state":"succeeded"}`))
}

func (r *recorder) seen() (int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls, slices.Clone(r.tokens)
}

// TestGlobalFlagsEveryForm runs every client command in each form
// `shoal --help` and `shoal CMD --help` show: the global flags before the
// command, after it, and from the environment; and checks that the call
// reached the agent the user named, with the secret the user named.
func TestGlobalFlagsEveryForm(t *testing.T) {
	dir := t.TempDir()
	local := filepath.Join(dir, "local")
	os.WriteFile(local, []byte("hello\n"), 0o644)
	secA, secB := secret.Generate(), secret.Generate()
	fileA, fileB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(fileA, []byte(secA.String()+"\n"), 0o600)
	os.WriteFile(fileB, []byte(secB.String()+"\n"), 0o600)

	for _, cmd := range leafCommands(newApp(&bytes.Buffer{}, &bytes.Buffer{}, nil).Commands, "") {
		args := sampleArgs[cmd]
		if args == nil {
			continue
		}
		args = slices.Clone(args)
		for i, a := range args {
			switch a {
			case "LOCALFILE":
				args[i] = local
			case "OUTFILE":
				args[i] = filepath.Join(dir, "out-"+strings.ReplaceAll(cmd, " ", "-"))
			}
		}
		words := strings.Fields(cmd)
		type form struct {
			name     string
			args     []string
			env      map[string]string
			wantFile string // the secret file whose token must arrive
		}
		forms := func(want, wrong string) []form {
			return []form{
				{"global", concat([]string{"shoal", "--addr", want, "--secret-file", fileA}, words, args), map[string]string{"SHOAL_ADDR": wrong, "SHOAL_SECRET_FILE": fileB}, fileA},
				{"per-command", concat([]string{"shoal"}, words, args, []string{"--addr", want, "--secret-file", fileA}), map[string]string{"SHOAL_ADDR": wrong, "SHOAL_SECRET_FILE": fileB}, fileA},
				{"per-command over global", concat([]string{"shoal", "--addr", wrong, "--secret-file", fileB}, words, []string{"--addr", want, "--secret-file", fileA}, args), nil, fileA},
				{"environment", concat([]string{"shoal"}, words, args), map[string]string{"SHOAL_ADDR": want, "SHOAL_SECRET_FILE": fileA}, fileA},
			}
		}
		for i := range 4 {
			good, bad := &recorder{}, &recorder{}
			gs, bs := httptest.NewServer(good), httptest.NewServer(bad)
			f := forms(gs.URL, bs.URL)[i]
			t.Run(cmd+"/"+f.name, func(t *testing.T) {
				for _, k := range []string{"SHOAL_ADDR", "SHOAL_SECRET_FILE", "SHOAL_SECRET", "SHOAL_CA_CERT"} {
					t.Setenv(k, "")
					os.Unsetenv(k)
				}
				t.Setenv("SHOAL_CLUSTER_DIR", filepath.Join(dir, "no-cluster"))
				for k, v := range f.env {
					t.Setenv(k, v)
				}
				var stdout, stderr bytes.Buffer
				run(context.Background(), f.args, &stdout, &stderr)
				n, tokens := good.seen()
				if n == 0 {
					t.Fatalf("%q: the agent named got no call; stderr %q", f.args, stderr.String())
				}
				if m, _ := bad.seen(); m != 0 {
					t.Fatalf("%q: %d calls went to the other agent", f.args, m)
				}
				want := secA.APIToken()
				for _, tok := range tokens {
					if tok != want {
						t.Fatalf("%q: a call carried the token of another secret", f.args)
					}
				}
			})
			gs.Close()
			bs.Close()
		}
	}
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestHelpEveryForm: every help form `shoal --help` names answers, exit 0.
func TestHelpEveryForm(t *testing.T) {
	forms := [][]string{{"shoal", "--help"}, {"shoal", "-h"}, {"shoal", "help"}, {"shoal"}}
	for _, cmd := range leafCommands(newApp(&bytes.Buffer{}, &bytes.Buffer{}, nil).Commands, "") {
		if cmd == "help" {
			continue
		}
		w := strings.Fields(cmd)
		forms = append(forms, concat([]string{"shoal"}, w, []string{"--help"}), concat([]string{"shoal", "help"}, w))
		if len(w) > 1 {
			forms = append(forms, []string{"shoal", w[0], "--help"}, []string{"shoal", w[0], "help", w[1]})
		}
	}
	for _, f := range forms {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), f, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "USAGE") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", f, code, stdout.String(), stderr.String())
		}
	}
}

// TestVersionForms: `shoal --version`, `shoal -v` and `shoal version`.
func TestVersionForms(t *testing.T) {
	for _, f := range [][]string{{"shoal", "--version"}, {"shoal", "-v"}, {"shoal", "version"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), f, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "shoal ") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", f, code, stdout.String(), stderr.String())
		}
	}
}

// TestCACertForm: an https agent is reached with --ca-cert (global or per
// command, or SHOAL_CA_CERT), and refused in words without it.
func TestCACertForm(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewTLSServer(rec)
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	t.Setenv("SHOAL_CLUSTER_DIR", t.TempDir())
	for _, args := range [][]string{
		{"shoal", "--ca-cert", caFile, "--addr", srv.URL, "members"},
		{"shoal", "members", "--addr", srv.URL, "--ca-cert", caFile},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("%q: exit %d, %s", args, code, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"shoal", "members", "--addr", srv.URL}, &stdout, &stderr); code == 0 || !strings.Contains(stderr.String(), "--ca-cert") {
		t.Fatalf("no CA: exit %d, %q", code, stderr.String())
	}
}

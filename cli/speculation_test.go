package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"shoal.dev/shoal/client"
	"strings"
	"sync"
	"testing"
)

// TestSpeculationFlags: job run --no-speculation, streaming's
// --no-speculation and -D mapreduce.{map,reduce}.speculative reach the
// submission as the job's switches; bad values are one-line usage errors
// and submit nothing.
func TestSpeculationFlags(t *testing.T) {
	var mu sync.Mutex
	var got []client.SubmitRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost && r.URL.Path == "/v1/jobs" {
			b, _ := io.ReadAll(r.Body)
			var req client.SubmitRequest
			if err := json.Unmarshal(b, &req); err != nil {
				t.Errorf("submission %q: %v", b, err)
			}
			mu.Lock()
			got = append(got, req)
			mu.Unlock()
			w.Write([]byte(`{"id":"job-1","state":"running"}`))
			return
		}
		w.Write([]byte(`{"state":"succeeded"}`))
	}))
	defer srv.Close()
	t.Setenv("SHOAL_CLUSTER_DIR", filepath.Join(t.TempDir(), "none"))
	t.Setenv("SHOAL_SECRET", "")
	t.Setenv("SHOAL_SECRET_FILE", "")
	stream := []string{"shoal", "streaming", "--addr", srv.URL, "--detach", "-input", "/in", "-output", "/out", "-mapper", "cat"}
	for _, c := range []struct {
		args       []string
		maps, reds bool
	}{
		{[]string{"shoal", "job", "run", "wordcount", "--addr", srv.URL, "--detach", "--input", "/in", "--output", "/out"}, false, false},
		{[]string{"shoal", "job", "run", "wordcount", "--addr", srv.URL, "--detach", "--input", "/in", "--output", "/out", "--no-speculation"}, true, true},
		{stream, false, false},
		{append(stream[:len(stream):len(stream)], "--no-speculation"), true, true},
		{append(stream[:len(stream):len(stream)], "-D", "mapreduce.map.speculative=false"), true, false},
		{append(stream[:len(stream):len(stream)], "-D", "mapreduce.reduce.speculative=false"), false, true},
		{append(stream[:len(stream):len(stream)], "-D", "mapreduce.map.speculative=true", "-D", "mapreduce.reduce.speculative=true"), false, false},
	} {
		mu.Lock()
		got = nil
		mu.Unlock()
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), c.args, &stdout, &stderr); code != 0 {
			t.Fatalf("%q: exit %d: %s", c.args, code, stderr.String())
		}
		mu.Lock()
		if len(got) != 1 || got[0].NoSpeculativeMaps != c.maps || got[0].NoSpeculativeReduces != c.reds {
			t.Errorf("%q: submitted %+v, want no-speculative maps %v, reduces %v", c.args, got, c.maps, c.reds)
		}
		mu.Unlock()
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{append(stream[:len(stream):len(stream)], "-D", "mapreduce.map.speculative=maybe"), "want true or false"},
		{append(stream[:len(stream):len(stream)], "-D", "mapreduce.reduce.speculative=1"), "want true or false"},
		{append(stream[:len(stream):len(stream)], "-D", "mapreduce.map.speculative=true", "--no-speculation"), "disagree"},
		{append(stream[:len(stream):len(stream)], "-D", "mapreduce.job.speculative=false"), "unknown property"},
	} {
		mu.Lock()
		got = nil
		mu.Unlock()
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), c.args, &stdout, &stderr)
		line := strings.TrimSpace(stderr.String())
		if code == 0 || !strings.Contains(line, c.want) || strings.Contains(line, "\n") {
			t.Errorf("%q: exit %d, stderr %q, want one line with %q", c.args, code, line, c.want)
		}
		mu.Lock()
		if len(got) != 0 {
			t.Errorf("%q: submitted %+v", c.args, got)
		}
		mu.Unlock()
	}
}

package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestDrainForms: `shoal drain` asks for force only with --force, follows
// the drain until done, and with --timeout stops waiting on a drain that
// does not end, saying that it goes on; an agent that is not there is one
// line, exit 1.
func TestDrainForms(t *testing.T) {
	for _, k := range []string{"SHOAL_ADDR", "SHOAL_SECRET_FILE", "SHOAL_SECRET"} {
		t.Setenv(k, "")
	}
	t.Setenv("SHOAL_CLUSTER_DIR", filepath.Join(t.TempDir(), "none"))
	var mu sync.Mutex
	var queries []string
	polls := 0
	done := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "POST":
			queries = append(queries, r.URL.RawQuery)
			w.Write([]byte(`{"node":"n1","draining":true,"blocks_left":-1}`))
		default:
			polls++
			if done && polls >= 2 {
				w.Write([]byte(`{"node":"n1","draining":true,"blocks_left":0,"done":true}`))
				return
			}
			w.Write([]byte(`{"node":"n1","draining":true,"blocks_left":7}`))
		}
	}))
	defer srv.Close()
	drain := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"shoal", "drain", "--addr", srv.URL}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}

	code, out, errs := drain()
	if code != 0 || !strings.Contains(out, "n1: 7 copies to hand over") || !strings.Contains(out, "n1 drained") {
		t.Fatalf("drain: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs = drain("--force")
	if code != 0 || queries[len(queries)-1] != "force=1" || queries[0] != "" {
		t.Fatalf("drain --force: exit %d, queries %q: %s", code, queries, errs)
	}
	mu.Lock()
	done = false
	mu.Unlock()
	code, _, errs = drain("--timeout", "1s")
	if code != 1 || !strings.Contains(errs, "n1 is still draining after --timeout 1s (7 copies left to hand over); the drain goes on") {
		t.Fatalf("drain --timeout: exit %d, %q", code, errs)
	}
	code, _, errs = drain("extra")
	if code != 2 {
		t.Fatalf("drain with an argument: exit %d, %q", code, errs)
	}
	srv.Close()
	code, _, errs = drain()
	if code != 1 || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, "cannot reach the agent") {
		t.Fatalf("drain of no agent: exit %d, %q", code, errs)
	}
}

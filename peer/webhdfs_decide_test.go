package peer

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"shoal.dev/shoal/blockstore"
)

func TestOpenTarget(t *testing.T) {
	for _, tc := range []struct {
		redirected, local bool
		holder, want      string
	}{
		{false, true, "", ""},          // this node holds the block: serve it
		{false, false, "n2", "n2"},     // another does: send the client there
		{false, false, "", ""},         // none known: serve it from the replicas
		{true, false, "n2", ""},        // redirected already: never again
		{true, true, "n2", ""},         // both
		{false, true, "n2", ""},        // local wins over a holder
		{true, false, "", ""},          // redirected, nobody: serve
		{false, false, "n3", "n3"},     // any holder
		{false, false, "self", "self"}, // (HolderOf never returns this node)
	} {
		if got := openTarget(tc.redirected, tc.local, tc.holder); got != tc.want {
			t.Errorf("openTarget(%v, %v, %q) = %q, want %q", tc.redirected, tc.local, tc.holder, got, tc.want)
		}
	}
}

func TestHDFSParams(t *testing.T) {
	p := parseHDFSParams(url.Values{"OP": {"open"}, "Recursive": {"TRUE"}, "noredirect": {"False"}, "bad": {"yes"}, "Offset": {"12"}, "neg": {"-1"}})
	if p["op"] != "open" {
		t.Fatalf("names not case-folded: %v", p)
	}
	for _, tc := range []struct {
		name      string
		def, want bool
		err       bool
	}{
		{"recursive", false, true, false},
		{"noredirect", true, false, false},
		{"absent", true, true, false},
		{"bad", false, false, true},
	} {
		got, err := p.bool(tc.name, tc.def)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("bool %s: %v %v", tc.name, got, err)
		}
	}
	if v, err := p.int("offset", 0, 0); v != 12 || err != nil {
		t.Errorf("offset: %d %v", v, err)
	}
	if _, err := p.int("neg", 0, 0); err == nil {
		t.Error("negative offset accepted")
	}
}

func TestHDFSErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		ex     string
	}{
		{fmt.Errorf("x: %w", blockstore.ErrNoFile), http.StatusNotFound, exNotFound},
		{fmt.Errorf("x: %w", blockstore.ErrExists), http.StatusForbidden, exExists},
		{fmt.Errorf("x: %w", blockstore.ErrIsDir), http.StatusForbidden, exExists},
		{fmt.Errorf("x: %w", blockstore.ErrBadPath), http.StatusBadRequest, exIllegalArg},
		{fmt.Errorf("x: %w", blockstore.ErrChanged), http.StatusForbidden, exBusy},
		{fmt.Errorf("disk full"), http.StatusForbidden, exIO},
		{hdfsErr(401, exSecurity, "no"), 401, exSecurity},
	} {
		e := fsHDFSError(tc.err)
		if e.status != tc.status || e.exception != tc.ex || javaClass[e.exception] == "" {
			t.Errorf("%v: %d %s, want %d %s", tc.err, e.status, e.exception, tc.status, tc.ex)
		}
	}
}

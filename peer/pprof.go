package peer

import (
	"net/http"
	"net/http/pprof"
	"strings"
)

// handlePprof serves Go's runtime profiles under /debug/pprof/ (behind the
// cluster token): the index, profile?seconds=N (CPU), trace?seconds=N,
// symbol, cmdline, and every named profile (heap, allocs, goroutine,
// block, mutex, threadcreate). The API's write timeout bounds a CPU
// profile or trace to less than it (2 minutes by default).
func (n *Node) handlePprof(w http.ResponseWriter, r *http.Request) {
	switch strings.TrimPrefix(r.URL.Path, "/debug/pprof/") {
	case "profile":
		pprof.Profile(w, r)
	case "trace":
		pprof.Trace(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "cmdline":
		pprof.Cmdline(w, r)
	default:
		pprof.Index(w, r)
	}
}

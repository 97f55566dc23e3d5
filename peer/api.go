package peer

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"shoal.dev/shoal/client"
	"slices"
	"strconv"
	"strings"
	"time"
)

// HealthInfo is the body of GET /v1/health.
type HealthInfo = client.HealthInfo

// OwnersInfo is the body of GET /v1/ring/owners.
type OwnersInfo = client.OwnersInfo

// PingRequest is the body of POST /v1/p2p/ping.
type PingRequest = client.PingRequest

// PingInfo is the answer to a ping.
type PingInfo = client.PingInfo

// apiError is the body of every refusal.
type apiError = client.ErrorBody

// maxBody bounds request bodies of control calls.
const maxBody = 1 << 20

// routes is the API's ServeMux, remembering the patterns registered (for
// Node.Routes and the access table test).
type routes struct {
	mux      *http.ServeMux
	patterns []string
}

func (r *routes) Handle(pattern string, h http.Handler) {
	r.mux.Handle(pattern, h)
	r.patterns = append(r.patterns, pattern)
}

func (r *routes) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	r.Handle(pattern, http.HandlerFunc(h))
}

// Routes lists the patterns of every route the HTTP API serves.
func (n *Node) Routes() []string { return slices.Clone(n.routes) }

func (n *Node) apiHandler() http.Handler {
	mux := &routes{mux: http.NewServeMux()}
	mux.HandleFunc("GET /v1/health", n.handleHealth)
	mux.Handle("GET /v1/members", n.auth(n.handleMembers))
	mux.Handle("GET /v1/ring/owners", n.auth(n.handleOwners))
	mux.Handle("POST /v1/p2p/ping", n.auth(n.handlePing))
	mux.HandleFunc("GET /metrics", n.handleMetrics)
	mux.Handle("POST /v1/drain", n.auth(n.handleDrainStart))
	mux.Handle("GET /v1/drain", n.auth(n.handleDrainStatus))
	n.fsRoutes(mux)
	n.webhdfsRoutes(mux)
	n.jobRoutes(mux)
	n.consoleRoutes(mux)
	mux.Handle("GET /debug/pprof/", n.auth(n.handlePprof))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	n.routes = mux.patterns
	return n.gateRecovery(mux.mux)
}

// auth requires the cluster's API token when the node has a secret.
func (n *Node) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !n.cfg.Secret.CheckToken(token) {
			writeError(w, http.StatusUnauthorized, "missing or wrong API token: the client needs the cluster secret (SHOAL_SECRET or --secret-file)")
			return
		}
		h(w, r)
	})
}

// handleHealth checks the data dir now: 200 and status "ok" (or
// "low_disk", with the reason in error), or 503 with status "unhealthy"
// and the reason in error.
func (n *Node) handleHealth(w http.ResponseWriter, r *http.Request) {
	h := HealthInfo{Status: "ok", Name: n.cfg.Name, Version: Version, Alive: n.Ring().Len()}
	reason := n.checkHealth()
	if ds := n.disk.Load(); ds != nil {
		h.DiskFree, h.DiskReserve, h.DiskPath, h.LowDisk = ds.Free, ds.Reserve, ds.Path, ds.Low
		if ds.Low {
			h.Status, h.Error = "low_disk", ds.Reason
		}
	}
	if reason != "" {
		h.Status, h.Error = "unhealthy", reason
		writeJSON(w, http.StatusServiceUnavailable, h)
		return
	}
	writeJSON(w, http.StatusOK, h)
}

func (n *Node) handleMembers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, n.Members())
}

func (n *Node) handleOwners(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	if key == "" {
		writeError(w, http.StatusBadRequest, "missing query parameter key")
		return
	}
	count := 3
	if s := r.URL.Query().Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 1000 {
			writeError(w, http.StatusBadRequest, "n must be a whole number from 1 to 1000, got "+strconv.Quote(s))
			return
		}
		count = v
	}
	writeJSON(w, http.StatusOK, OwnersInfo{Key: key, Owners: n.Ring().Owners(key, count)})
}

func (n *Node) handlePing(w http.ResponseWriter, r *http.Request) {
	var req PingRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil || req.Node == "" {
		writeError(w, http.StatusBadRequest, "want a JSON body {\"node\": NAME}")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	res, err := n.Ping(ctx, req.Node)
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, ErrUnknownNode) {
			status = http.StatusNotFound
		}
		writeError(w, status, "ping "+req.Node+": "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, PingInfo{
		Node:   res.Name,
		PeerID: res.PeerID,
		From:   n.cfg.Name,
		RTTMs:  float64(res.RTT.Microseconds()) / 1000,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeJSONNow is writeJSON with a Content-Length, flushed: the client has
// the whole answer when it returns, before the handler ends.
func writeJSONNow(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeJSON(w, status, v)
		return
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
	_ = http.NewResponseController(w).Flush()
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Error: msg})
}

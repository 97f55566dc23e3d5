package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/client"
	"shoal.dev/shoal/gossip"
	"shoal.dev/shoal/scheduler"
)

func (n *Node) jobRoutes(mux *routes) {
	mux.Handle("POST /v1/jobs", n.auth(n.handleSubmit))
	mux.Handle("GET /v1/jobs", n.auth(n.handleJobs))
	mux.Handle("GET /v1/jobs/{id}", n.auth(n.handleJob))
	mux.Handle("POST /v1/jobs/{id}/kill", n.auth(n.handleKill))
	mux.Handle("GET /v1/jobs/{id}/logs", n.auth(n.handleTaskLogs))
	mux.Handle("GET /v1/jobs/{id}/logs/{task}", n.auth(n.handleTaskLog))
}

func jobStatus(err error) int {
	switch {
	case errors.Is(err, scheduler.ErrNoProgram):
		return http.StatusGone // store the program again, and submit again
	case errors.Is(err, scheduler.ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, scheduler.ErrNoJob):
		return http.StatusNotFound
	case errors.Is(err, scheduler.ErrOutputExists):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

func (n *Node) handleSubmit(w http.ResponseWriter, r *http.Request) {
	var req scheduler.SubmitRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "malformed job request: "+err.Error())
		return
	}
	rec, err := n.Submit(r.Context(), req)
	if err != nil {
		writeError(w, jobStatus(err), err.Error())
		return
	}
	st, err := n.sched.Status(rec.ID)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, st.Wire())
}

// Submit submits a job. Its inputs and output are checked against every
// member's records, so a file put anywhere a moment ago counts.
func (n *Node) Submit(ctx context.Context, req scheduler.SubmitRequest) (scheduler.JobRecord, error) {
	if spec, ok := n.cfg.Registry.Lookup(req.Name); ok && spec.RunsCommands && n.cfg.Secret.IsZero() {
		return scheduler.JobRecord{}, fmt.Errorf("%w: job %s runs commands on every node; the cluster needs a secret (--secret-file) before it accepts it", scheduler.ErrBadRequest, req.Name)
	}
	if req.Binary != "" {
		switch {
		case n.cfg.Secret.IsZero() && n.cfg.Insecure:
			return scheduler.JobRecord{}, fmt.Errorf("%w: a shipped program runs its code on every node; a cluster that listens beyond loopback needs a secret (--secret-file) before it accepts one", scheduler.ErrBadRequest)
		case n.cfg.TaskUser != "":
			return scheduler.JobRecord{}, fmt.Errorf("%w: this node runs job commands as --task-user %s, which shipped programs do not support yet", scheduler.ErrBadRequest, n.cfg.TaskUser)
		}
	}
	var wg sync.WaitGroup
	for _, prefix := range submitPrefixes(req) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.syncRecords(ctx, prefix)
		}()
	}
	wg.Wait()
	return n.sched.Submit(ctx, req)
}

// submitPrefixes are the file records a submission reads, to pull from
// every member first: those under each input's path (a glob's up to its
// first wildcard) and under the output's. Pulling all of them instead, as
// Submit did, moved every file record of every member at each submit, a
// cost that grew with the namespace. A path that is not absolute pulls
// every file record, as before (Submit then rejects it or reads it as
// the scheduler does).
func submitPrefixes(req scheduler.SubmitRequest) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range append(slices.Clone(req.Inputs), req.Output) {
		if i := strings.IndexAny(p, "*?[\\"); i >= 0 {
			p = p[:i]
		}
		prefix := blockstore.FileKeyPrefix
		if strings.HasPrefix(p, "/") {
			prefix = fileRecordPrefix(path.Clean(p))
		}
		if !seen[prefix] {
			seen[prefix] = true
			out = append(out, prefix)
		}
	}
	return out
}

func (n *Node) handleJobs(w http.ResponseWriter, r *http.Request) {
	n.syncRecords(r.Context(), "job")
	writeJSON(w, http.StatusOK, scheduler.WireList(n.sched.List()))
}

// handleJob answers GET /v1/jobs/ID[?wait=D]. With a wait it holds the
// answer about a running job until the job's end record reaches this node
// (pushed by the node that wrote it, or by gossip) or D passes, so a
// client learns of the end at once instead of at its next poll.
func (n *Node) handleJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	wait, err := parseJobWait(r.URL.Query().Get("wait"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var ends <-chan gossip.Record
	if wait > 0 {
		// Watching before the sync: an end merged meanwhile is not missed.
		var stop func()
		ends, stop = n.gossip.Records().Watch(jobStateKey(id))
		defer stop()
	}
	n.syncRecords(r.Context(), "job/"+id)
	n.syncRecords(r.Context(), jobStateKey(id))
	st, err := n.sched.Status(id)
	if err != nil {
		writeError(w, jobStatus(err), err.Error())
		return
	}
	if wait > 0 && st.State == scheduler.StateRunning {
		t := time.NewTimer(wait)
		defer t.Stop()
	hold:
		for {
			select {
			case rec, ok := <-ends:
				if !ok {
					break hold // the node is stopping
				}
				if rec.Key != jobStateKey(id) {
					continue
				}
				if st, err = n.sched.Status(id); err != nil || st.State != scheduler.StateRunning {
					break hold
				}
			case <-t.C:
				break hold
			case <-r.Context().Done():
				return
			}
		}
		if st, err = n.sched.Status(id); err != nil {
			writeError(w, jobStatus(err), err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, st.Wire())
}

// jobStateKey is the key of a job's end record.
func jobStateKey(id string) string { return "jobstate/" + id }

// parseJobWait checks GET /v1/jobs/ID's wait: a duration up to
// client.MaxJobWait, or none.
func parseJobWait(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > client.MaxJobWait {
		return 0, fmt.Errorf("wait %q: want a duration up to %s, such as 300ms", s, client.MaxJobWait)
	}
	return d, nil
}

func (n *Node) handleKill(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n.syncRecords(r.Context(), "job/"+id)
	n.syncRecords(r.Context(), jobStateKey(id))
	st, err := n.sched.Kill(id)
	if err != nil {
		writeError(w, jobStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, st.Wire())
}

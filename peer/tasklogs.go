package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"shoal.dev/shoal/client"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"shoal.dev/shoal/mesh"
	"shoal.dev/shoal/scheduler"
	"shoal.dev/shoal/tasklog"
)

// taskLogProtocol serves the task attempt logs a node keeps: one request,
// msgpack, then one answer, msgpack, followed by the answer's Length raw
// bytes of log.
const taskLogProtocol = "/shoal/tasklog/1"

// Limits of the task log protocol, checked before anything is allocated.
const (
	// maxLogListing is the most attempts one node lists for a job.
	maxLogListing = 10000
	// maxLogChunk is the most log bytes one read answer carries.
	maxLogChunk    = 2 << 20
	taskLogTimeout = 10 * time.Second
)

type taskLogRequest struct {
	Job    string `msgpack:"j"`
	Task   string `msgpack:"t,omitempty"` // list: only this task's attempts
	Read   bool   `msgpack:"r,omitempty"` // read one log, else list
	Start  int64  `msgpack:"s,omitempty"` // the attempt's start (Unix ns) to read
	Offset int64  `msgpack:"o,omitempty"`
}

type taskLogAnswer struct {
	Err     string          `msgpack:"e,omitempty"`
	Entries []tasklog.Entry `msgpack:"l,omitempty"`
	More    bool            `msgpack:"m,omitempty"` // listing cut at maxLogListing
	Entry   tasklog.Entry   `msgpack:"n,omitempty"`
	Length  int64           `msgpack:"z,omitempty"` // bytes that follow
}

// AttemptLog is one task attempt's log as GET /v1/jobs/ID/logs lists it.
type AttemptLog = client.AttemptLog

// AttemptLogs is the body of GET /v1/jobs/ID/logs.
type AttemptLogs = client.AttemptLogs

// serveTaskLog answers one task log request.
func (n *Node) serveTaskLog(from mesh.NodeName, s mesh.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(taskLogTimeout))
	var req taskLogRequest
	if err := mesh.ReadMsg(s, &req, 4<<10); err != nil || !tasklog.ValidName(req.Job) || req.Task != "" && !tasklog.ValidName(req.Task) {
		n.log.Warn("bad task log request", "from", from, "err", err)
		s.Reset()
		return
	}
	if !req.Read {
		ents, err := n.logs.List(req.Job)
		var ans taskLogAnswer
		if err != nil {
			ans.Err = err.Error()
		}
		for _, e := range ents {
			if req.Task != "" && e.Task != req.Task {
				continue
			}
			if len(ans.Entries) == maxLogListing {
				ans.More = true
				break
			}
			ans.Entries = append(ans.Entries, e)
		}
		mesh.WriteMsg(s, ans)
		return
	}
	r, e, err := n.logs.Open(req.Job, req.Task, time.Unix(0, req.Start), req.Offset)
	if err != nil {
		mesh.WriteMsg(s, taskLogAnswer{Err: err.Error()})
		return
	}
	defer r.Close()
	off := min(max(req.Offset, 0), e.Size)
	length := min(e.Size-off, maxLogChunk)
	if err := mesh.WriteMsg(s, taskLogAnswer{Entry: e, Length: length}); err != nil {
		return
	}
	if _, err := io.CopyN(s, r, length); err != nil {
		s.Reset()
	}
}

// listLogs asks one member (this node included) for a job's attempts.
func (n *Node) listLogs(ctx context.Context, member, job, task string) ([]tasklog.Entry, bool, error) {
	if member == n.cfg.Name {
		ents, err := n.logs.List(job)
		if task != "" {
			ents = slices.DeleteFunc(ents, func(e tasklog.Entry) bool { return e.Task != task })
		}
		return ents, false, err
	}
	var ans taskLogAnswer
	if err := n.askLogs(ctx, member, taskLogRequest{Job: job, Task: task}, &ans, nil); err != nil {
		return nil, false, err
	}
	if ans.Err != "" {
		return nil, false, errors.New(ans.Err)
	}
	return ans.Entries, ans.More, nil
}

// askLogs sends one request to a member; when the answer carries log
// bytes, they are copied to body.
func (n *Node) askLogs(ctx context.Context, member string, req taskLogRequest, ans *taskLogAnswer, body io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, taskLogTimeout)
	defer cancel()
	s, err := n.Dial(ctx, member, taskLogProtocol)
	if err != nil {
		return fmt.Errorf("%s did not answer for its task logs", member)
	}
	defer s.Close()
	d, _ := ctx.Deadline()
	s.SetDeadline(d)
	if err := mesh.WriteMsg(s, req); err != nil {
		return fmt.Errorf("%s did not answer for its task logs", member)
	}
	if err := mesh.ReadMsg(s, ans, 16<<20); err != nil {
		return fmt.Errorf("%s sent no readable answer for its task logs", member)
	}
	if ans.Length < 0 || ans.Length > maxLogChunk {
		return fmt.Errorf("%s answered a log read of %d bytes, more than %d", member, ans.Length, maxLogChunk)
	}
	if ans.Length > 0 {
		if _, err := io.CopyN(body, s, ans.Length); err != nil {
			return fmt.Errorf("%s stopped while sending a task log", member)
		}
	}
	return nil
}

// TaskLogs lists a job's attempt logs on every alive member (task "" for
// every task), numbering each task's attempts in the order they started.
func (n *Node) TaskLogs(ctx context.Context, job, task string) AttemptLogs {
	out := AttemptLogs{Job: job, Attempts: []AttemptLog{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range n.Ring().Members() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ents, more, err := n.listLogs(ctx, m, job, task)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				n.log.Warn("task logs: a member did not list its logs", "member", m, "err", err)
				out.Missing = append(out.Missing, m)
				return
			}
			out.Cut = out.Cut || more
			for _, e := range ents {
				out.Attempts = append(out.Attempts, AttemptLog{Task: e.Task, Node: m, Start: e.Start, End: e.End, Result: e.Result, Size: e.Size, IO: wireIO(e.IO)})
			}
		}()
	}
	wg.Wait()
	sort.Strings(out.Missing)
	sort.Slice(out.Attempts, func(i, j int) bool {
		a, b := out.Attempts[i], out.Attempts[j]
		if a.Task != b.Task {
			return a.Task < b.Task
		}
		if !a.Start.Equal(b.Start) {
			return a.Start.Before(b.Start)
		}
		return a.Node < b.Node
	})
	for i := range out.Attempts {
		if i > 0 && out.Attempts[i-1].Task == out.Attempts[i].Task {
			out.Attempts[i].Attempt = out.Attempts[i-1].Attempt + 1
		} else {
			out.Attempts[i].Attempt = 1
		}
	}
	return out
}

// readLog copies an attempt's log from offset to w and returns its entry
// as of the read and the new offset.
func (n *Node) readLog(ctx context.Context, a AttemptLog, job string, offset int64, w io.Writer) (tasklog.Entry, int64, error) {
	if a.Node == n.cfg.Name {
		r, e, err := n.logs.Open(job, a.Task, a.Start, offset)
		if err != nil {
			return e, offset, err
		}
		defer r.Close()
		k, err := io.Copy(w, io.LimitReader(r, e.Size-min(offset, e.Size)))
		return e, min(offset, e.Size) + k, err
	}
	var ans taskLogAnswer
	cw := &countWriter{w: w}
	err := n.askLogs(ctx, a.Node, taskLogRequest{Job: job, Task: a.Task, Read: true, Start: a.Start.UnixNano(), Offset: offset}, &ans, cw)
	if err == nil && ans.Err != "" {
		err = errors.New(ans.Err)
	}
	return ans.Entry, offset + cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	k, err := c.w.Write(p)
	c.n += int64(k)
	return k, err
}

// logPoll is how often a followed log that is still being written is
// read again.
const logPoll = 300 * time.Millisecond

// handleTaskLogs lists a job's attempts: GET /v1/jobs/{id}/logs[?task=T].
func (n *Node) handleTaskLogs(w http.ResponseWriter, r *http.Request) {
	id, task := r.PathValue("id"), r.URL.Query().Get("task")
	if !n.knownJob(r.Context(), id) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such job %q", id))
		return
	}
	if task != "" && !tasklog.ValidName(task) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad task name %q: want one like m-000003 or r-00001", task))
		return
	}
	writeJSON(w, http.StatusOK, n.TaskLogs(r.Context(), id, task))
}

// knownJob reports whether a job's records exist (after pulling them).
func (n *Node) knownJob(ctx context.Context, id string) bool {
	if !tasklog.ValidName(id) {
		return false
	}
	_, err := n.sched.Status(id)
	if errors.Is(err, scheduler.ErrNoJob) {
		n.syncRecords(ctx, "job/"+id)
		n.syncRecords(ctx, "jobstate/"+id)
		_, err = n.sched.Status(id)
	}
	return err == nil
}

// handleTaskLog sends one attempt's log as text:
// GET /v1/jobs/{id}/logs/{task}[?attempt=N][&follow=1]. Without attempt,
// the task's last. With follow, the answer goes on as the log grows and
// ends when the attempt does.
func (n *Node) handleTaskLog(w http.ResponseWriter, r *http.Request) {
	id, task := r.PathValue("id"), r.PathValue("task")
	if !n.knownJob(r.Context(), id) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such job %q", id))
		return
	}
	if !tasklog.ValidName(task) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad task name %q: want one like m-000003 or r-00001", task))
		return
	}
	want := 0
	if s := r.URL.Query().Get("attempt"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			writeError(w, http.StatusBadRequest, "attempt must be a whole number from 1, got "+strconv.Quote(s))
			return
		}
		want = v
	}
	follow := r.URL.Query().Get("follow") == "1"
	ls := n.TaskLogs(r.Context(), id, task)
	if len(ls.Attempts) == 0 {
		msg := fmt.Sprintf("no log of task %s of job %s on any alive member", task, id)
		if len(ls.Missing) > 0 {
			msg += fmt.Sprintf(" (%v did not answer)", ls.Missing)
		}
		writeError(w, http.StatusNotFound, msg)
		return
	}
	a := ls.Attempts[len(ls.Attempts)-1]
	if want > 0 {
		if want > len(ls.Attempts) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("task %s of job %s has %d attempts with logs, not %d", task, id, len(ls.Attempts), want))
			return
		}
		a = ls.Attempts[want-1]
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Shoal-Attempt", strconv.Itoa(a.Attempt))
	w.Header().Set("X-Shoal-Node", a.Node)
	rc := http.NewResponseController(w)
	var off int64
	for {
		e, next, err := n.readLog(r.Context(), a, id, off, w)
		if err != nil {
			if off == 0 {
				writeError(w, http.StatusBadGateway, fmt.Sprintf("log of task %s attempt %d of job %s on %s: %v", task, a.Attempt, id, a.Node, err))
			} else {
				fmt.Fprintf(w, "\n[shoal: the log stopped: %s]\n", err)
			}
			return
		}
		off = next
		rc.Flush()
		if !follow || e.Result != tasklog.Running && off >= e.Size {
			return
		}
		if off < e.Size {
			continue // more than one chunk
		}
		// Waiting writes nothing: keep the connection's deadline ahead.
		_ = rc.SetWriteDeadline(time.Now().Add(n.cfg.APIWriteTimeout + logPoll))
		t := time.NewTimer(logPoll)
		select {
		case <-r.Context().Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

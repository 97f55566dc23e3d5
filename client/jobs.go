package client

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"
)

// Submit submits a job; the status it returns is the job's first.
func (c *Client) Submit(ctx context.Context, req SubmitRequest) (JobStatus, error) {
	var st JobStatus
	return st, c.do(ctx, "POST", "/v1/jobs", req, &st)
}

// Job returns a job's status.
func (c *Client) Job(ctx context.Context, id string) (JobStatus, error) {
	var st JobStatus
	return st, c.do(ctx, "GET", "/v1/jobs/"+url.PathEscape(id), nil, &st)
}

// Jobs lists the jobs the cluster remembers, newest first.
func (c *Client) Jobs(ctx context.Context) ([]JobStatus, error) {
	var sts []JobStatus
	return sts, c.do(ctx, "GET", "/v1/jobs", nil, &sts)
}

// Kill stops a job on every node.
func (c *Client) Kill(ctx context.Context, id string) (JobStatus, error) {
	var st JobStatus
	return st, c.do(ctx, "POST", "/v1/jobs/"+url.PathEscape(id)+"/kill", nil, &st)
}

// MaxJobWait is the longest wait GET /v1/jobs/ID?wait=D may ask for; an
// agent answers 400 to a longer one.
const MaxJobWait = time.Minute

// JobWait returns the job's status as soon as the job has ended, or after
// wait if it is still running then: the agent holds the answer, so the end
// reaches the caller at once, not at its next poll. A wait of 0 is Job.
// It is an error for wait to exceed MaxJobWait.
func (c *Client) JobWait(ctx context.Context, id string, wait time.Duration) (JobStatus, error) {
	var st JobStatus
	return st, c.do(ctx, "GET", "/v1/jobs/"+url.PathEscape(id)+JobWaitQuery(wait), nil, &st)
}

// JobWaitQuery is the query of GET /v1/jobs/ID that holds the answer until
// the job ends or wait passes: "?wait=300ms", or "" for no wait.
func JobWaitQuery(wait time.Duration) string {
	if wait <= 0 {
		return ""
	}
	return "?wait=" + url.QueryEscape(wait.String())
}

// Wait returns the job's status once it has ended, or its last status when
// ctx is done; it asks at least every interval (capped at MaxJobWait) and
// learns of the end as soon as the agent it asks does. A failed or killed
// job is no error of Wait's: look at State and Error.
func (c *Client) Wait(ctx context.Context, id string, interval time.Duration) (JobStatus, error) {
	interval = min(max(interval, 10*time.Millisecond), MaxJobWait)
	for {
		asked := time.Now()
		st, err := c.JobWait(ctx, id, interval)
		if err != nil || st.Ended() {
			return st, err
		}
		// An agent older than the wait answers at once: ask again only
		// after interval.
		t := time.NewTimer(interval - time.Since(asked))
		select {
		case <-ctx.Done():
			t.Stop()
			return st, c.contextError(ctx.Err())
		case <-t.C:
		}
	}
}

// TaskLogs lists a job's attempt logs over the cluster (task "" for every
// task).
func (c *Client) TaskLogs(ctx context.Context, id, task string) (AttemptLogs, error) {
	var out AttemptLogs
	q := ""
	if task != "" {
		q = "?task=" + url.QueryEscape(task)
	}
	return out, c.do(ctx, "GET", "/v1/jobs/"+url.PathEscape(id)+"/logs"+q, nil, &out)
}

// TaskLog copies one attempt's log to w: attempt 0 for the task's last;
// with follow, until the attempt ends.
func (c *Client) TaskLog(ctx context.Context, id, task string, attempt int, follow bool, w io.Writer) error {
	q := url.Values{}
	if attempt > 0 {
		q.Set("attempt", strconv.Itoa(attempt))
	}
	if follow {
		q.Set("follow", "1")
	}
	req, err := c.request(ctx, "GET", "/v1/jobs/"+url.PathEscape(id)+"/logs/"+url.PathEscape(task)+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := c.roundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return c.contextError(cerr)
		}
		return fmt.Errorf("the agent at %s stopped sending the log: %s", c.base, describeTransport(err))
	}
	return nil
}

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

// Wait asks for the job's status every interval until it has ended or ctx
// is done, and returns its last status. A failed or killed job is no error
// of Wait's: look at State and Error.
func (c *Client) Wait(ctx context.Context, id string, interval time.Duration) (JobStatus, error) {
	t := time.NewTicker(max(interval, 10*time.Millisecond))
	defer t.Stop()
	for {
		st, err := c.Job(ctx, id)
		if err != nil || st.Ended() {
			return st, err
		}
		select {
		case <-ctx.Done():
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

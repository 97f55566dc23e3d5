package peer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/scheduler"
	"shoal.dev/shoal/secret"
)

// postJob sends a raw POST /v1/jobs and returns the status and error text.
func postJob(t *testing.T, n *peer.Node, s secret.Secret, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", n.HTTPURL()+"/v1/jobs", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.APIToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error string `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error
}

// TestLimitsAtTheDoor: requests that would pin the cluster or outgrow the
// metadata are refused at submission with a 400 that names the limit, and
// nothing is written.
func TestLimitsAtTheDoor(t *testing.T) {
	sec := secret.Generate()
	c := clustertest.Start(t, 2, clustertest.Options{Secret: sec})
	n := c.Node(0)
	put(t, n, "/in", []byte("a b c\n"), blockstore.MinBlockSize)
	long := "/" + strings.Repeat("d", 250) + "/" + strings.Repeat("e", 250)
	cases := []struct {
		name, body, want string
	}{
		{"reducers", `{"name":"wordcount","inputs":["/in"],"output":"/o","reducers":1099511627776}`, "1099511627776 reducers; a job runs at most 10000"},
		{"teragen tasks", `{"name":"teragen","params":{"rows":"1000000000","tasks":"1000000000"},"output":"/o"}`, "1000000000 map tasks; a job runs at most 400000"},
		{"max attempts", `{"name":"wordcount","inputs":["/in"],"output":"/o","max_attempts":1000000}`, "max attempts 1000000; at most 100"},
		{"parameter size", `{"name":"grep","params":{"pattern":"` + strings.Repeat("x", scheduler.MaxParamLen+1) + `"},"inputs":["/in"],"output":"/o"}`, "param pattern: 16385 bytes, more than the limit of 16384"},
		{"cmdenv size", `{"name":"streaming","params":{"mapper":"cat","reducer":"cat","cmdenv":"A=` + strings.Repeat("x", scheduler.MaxParamLen) + `"},"inputs":["/in"],"output":"/o"}`, "param cmdenv: 16386 bytes"},
		{"parameters together", `{"name":"streaming","params":{"mapper":"` + strings.Repeat("x", 16000) + `","reducer":"` + strings.Repeat("x", 16000) + `","cmdenv":"A=` + strings.Repeat("x", 1000) + `"},"inputs":["/in"],"output":"/o"}`, "more than the limit of 32768"},
		{"output path", `{"name":"wordcount","inputs":["/in"],"output":"` + long + `"}`, "would not fit the metadata's key limit"},
	}
	for _, tc := range cases {
		start := time.Now()
		status, msg := postJob(t, n, sec, tc.body)
		if status != http.StatusBadRequest || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %d %q, want 400 saying %q", tc.name, status, msg, tc.want)
		}
		t.Logf("%s: refused in %s: %s", tc.name, time.Since(start).Round(time.Millisecond), msg)
	}
	if jobs := n.Scheduler().List(); len(jobs) != 0 {
		t.Fatalf("refused requests wrote %d jobs", len(jobs))
	}
	// Just under the limits is accepted.
	status, msg := postJob(t, n, sec, `{"name":"wordcount","inputs":["/in"],"output":"/ok","reducers":3,"max_attempts":100}`)
	if status != http.StatusCreated {
		t.Fatalf("a request within the limits: %d %s", status, msg)
	}
}

// TestCounterLimit: a streaming job whose tasks report 1,500 counters each
// fails with the counter limit's message, after one attempt, instead of
// running forever unable to write its records.
func TestCounterLimit(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{})
	ctx := context.Background()
	put(t, c.Node(0), "/in", bytes.Repeat([]byte("one two three\n"), 10_000), blockstore.MinBlockSize)
	mapper := `cat; i=0; while [ $i -lt 1500 ]; do echo "reporter:counter:Limits,a-rather-long-counter-name-number-$i,1" >&2; i=$((i+1)); done`
	rec, err := c.Node(0).Submit(ctx, scheduler.SubmitRequest{
		Name: "streaming", Params: map[string]string{"mapper": mapper, "reducer": "cat"}, Inputs: []string{"/in"}, Output: "/out", Reducers: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	st := waitJob(t, c.Node(1), rec.ID, 60*time.Second)
	if st.State != scheduler.StateFailed || !strings.Contains(st.Error, "1500 counters, more than the limit of 120 per job") {
		t.Fatalf("job %s: %q", st.State, st.Error)
	}
	if n := st.Counters[job.NUM_FAILED_MAPS]; n > int64(st.Maps) {
		t.Fatalf("%d failed map attempts for %d maps: the limit was retried", n, st.Maps)
	}
	t.Logf("failed: %s", st.Error)
}

// TestKillWhateverTheRecordsHold: a job whose tasks' counters together are
// too large for one state record can still be killed (the counters are
// dropped from its state record, which says so).
//
// Each node publishes its own tasks' counters in its tasks record, which
// must fit the metadata's value limit too, or the job fails (with nothing
// to kill). So the counters are spread thinly: 60 map tasks of 10 counters
// of 122 bytes each (in msgpack), different per task; the last task blocks
// until the kill. The 59 that finish hold 590 counters, about 72 KB, more
// than a state record's 64 KiB. A node's record outgrows it only with 54 of
// the 59 tasks, which placement over 3 nodes does not give one node. (It
// used to be 10 tasks of 100 counters: any node that mapped 6 of them
// failed the job, in about a third of the runs.)
func TestKillWhateverTheRecordsHold(t *testing.T) {
	const tasks = 60
	reg := testRegistry(t)
	blocker := job.MapTaskID(tasks - 1)
	err := reg.Register(job.Spec{Name: "manycounters", Usage: "test", Build: func(map[string]string) (*job.Job, error) {
		return &job.Job{
			Generate: tasks,
			MapOnly:  true,
			NewMapper: func(info job.TaskInfo) (job.Mapper, error) {
				return &counterMapper{task: info.TaskID, block: info.TaskID == blocker, abort: make(chan struct{})}, nil
			},
		}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := clustertest.Start(t, 3, clustertest.Options{Registry: reg})
	rec, err := c.Node(0).Submit(context.Background(), scheduler.SubmitRequest{Name: "manycounters", Output: "/out"})
	if err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 60*time.Second, func() error {
		st, _ := c.Node(0).Scheduler().Status(rec.ID)
		if st.State != scheduler.StateRunning {
			t.Fatalf("job %s before the kill: %s", st.State, st.Error)
		}
		if st.MapsDone < tasks-1 {
			return fmt.Errorf("%d maps done", st.MapsDone)
		}
		return nil
	})
	st, err := c.Node(1).Scheduler().Kill(rec.ID)
	if err != nil || st.State != scheduler.StateKilled {
		t.Fatalf("kill: %v %v (job's error: %q)", st.State, err, st.Error)
	}
	if !strings.Contains(st.Error, "counters dropped") {
		t.Fatalf("killed job's error %q does not say its counters were dropped", st.Error)
	}
}

// counterMapper reports 10 counters; one task blocks until aborted.
type counterMapper struct {
	task  string
	block bool
	abort chan struct{}
	once  sync.Once
}

func (m *counterMapper) Map(k, v []byte, out job.Emitter) error {
	if m.block {
		<-m.abort
		return errors.New("aborted")
	}
	return nil
}

func (m *counterMapper) Abort() { m.once.Do(func() { close(m.abort) }) }

func (m *counterMapper) Counters() job.Counters {
	c := job.Counters{}
	for i := range 10 {
		c.Add(fmt.Sprintf("%s-%03d-%s", m.task, i, strings.Repeat("n", 106)), 1)
	}
	return c
}

// TestSchedulerKeepsTheDriverContract: the distributed runner rejects a
// constructor that returns no mapper as the sequential one does (it used to
// fail with a nil-pointer panic), and a permanent failure ends the job after
// one attempt: both run their tasks through job's one driver.
func TestSchedulerKeepsTheDriverContract(t *testing.T) {
	reg := job.NewRegistry()
	for name, newMapper := range map[string]func(job.TaskInfo) (job.Mapper, error){
		"nilmapper": func(job.TaskInfo) (job.Mapper, error) { return nil, nil },
		"permanent": func(job.TaskInfo) (job.Mapper, error) {
			return job.MapperFunc(func(k, v []byte, out job.Emitter) error {
				return job.Permanent(errors.New("no retry can fix this"))
			}), nil
		},
	} {
		if err := reg.Register(job.Spec{Name: name, Usage: "test", Build: func(map[string]string) (*job.Job, error) {
			return &job.Job{Generate: 2, MapOnly: true, NewMapper: newMapper}, nil
		}}); err != nil {
			t.Fatal(err)
		}
	}
	c := clustertest.Start(t, 2, clustertest.Options{Registry: reg})
	for _, tc := range []struct{ name, want string }{
		{"nilmapper", "new mapper: returned no mapper"},
		{"permanent", "no retry can fix this"},
	} {
		j, _ := reg.Resolve(tc.name, nil)
		_, seqErr := job.RunSequential(context.Background(), j, "seq", nil, nil, 0, func(string) (io.WriteCloser, error) { return nopWriteCloser{io.Discard}, nil })
		st := runJob(t, c.Node(0), scheduler.SubmitRequest{Name: tc.name, Output: "/" + tc.name})
		if seqErr == nil || !strings.Contains(seqErr.Error(), tc.want) || st.State != scheduler.StateFailed || !strings.Contains(st.Error, tc.want) {
			t.Errorf("%s: sequential %v; distributed %s %q; want both to say %q", tc.name, seqErr, st.State, st.Error, tc.want)
		}
		if tc.name == "permanent" && st.Counters[job.NUM_FAILED_MAPS] > 2 {
			t.Errorf("permanent: %d failed attempts of 2 maps: retried", st.Counters[job.NUM_FAILED_MAPS])
		}
	}
}

package scheduler

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/codec"
	"shoal.dev/shoal/gossip"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/worker"
)

// Limits of one job. Each is checked at submission (Submit answers
// ErrBadRequest, nothing written) or, for what only a running job knows
// (its counters), by the task that exceeds it, which fails the job at once
// with the limit's message. README.md lists them.
const (
	// MaxReducers bounds a job's reduce partitions.
	MaxReducers = 10_000
	// MaxMapTasks bounds a job's map tasks: its input blocks, or a
	// generator job's tasks (teragen's tasks=). A node's tasks record
	// holds the splits it mapped as a bitmap at worst (one bit per split up
	// to the highest), which must fit the metadata's 64 KiB value limit.
	MaxMapTasks = 400_000
	// MaxAttempts bounds --max-attempts.
	MaxAttempts = 100
	// MaxParams bounds the parameters a submission gives.
	MaxParams = 64
	// MaxParamLen bounds one given parameter's value in bytes (streaming's
	// -cmdenv pairs and -file list are one parameter each).
	MaxParamLen = 16 << 10
	// MaxParamsLen bounds the given parameters' names and values together.
	MaxParamsLen = 32 << 10
	// MaxCounters bounds the distinct counters a job's code reports
	// (Hadoop's mapreduce.job.counters.max); Shoal's own do not count.
	MaxCounters = 120
	// MaxCounterNameLen bounds a counter's name in bytes (streaming's
	// "GROUP:NAME").
	MaxCounterNameLen = 128
	// maxErrorLen bounds the error message kept in a failure or state
	// record.
	maxErrorLen = 4 << 10
)

// MaxOutputPathLen is the longest job output directory: its files' record
// keys ("file/" DIR "/part-r-00000", or a longer part-m name for more than
// 100,000 map tasks) must fit the metadata's key limit.
const MaxOutputPathLen = gossip.MaxKeyLen - len(blockstore.FileKeyPrefix) - len("/part-r-00000")

// shoalCounters are the counters Shoal itself keeps, which MaxCounters
// does not count.
var shoalCounters = []string{
	job.MAP_INPUT_RECORDS, job.MAP_OUTPUT_RECORDS, job.MAP_OUTPUT_BYTES,
	job.COMBINE_INPUT_RECORDS, job.COMBINE_OUTPUT_RECORDS, job.SPILLED_RECORDS,
	job.REDUCE_SHUFFLE_BYTES, job.REDUCE_SHUFFLE_REMOTE_BYTES, job.REDUCE_SHUFFLE_WIRE_BYTES, job.REDUCE_INPUT_GROUPS, job.REDUCE_INPUT_RECORDS,
	job.REDUCE_OUTPUT_RECORDS, job.TOTAL_LAUNCHED_MAPS, job.TOTAL_LAUNCHED_REDUCES,
	job.DATA_LOCAL_MAPS, job.NUM_FAILED_MAPS, job.NUM_FAILED_REDUCES,
}

// checkParams checks the parameters a submission gives (not those a
// job's Prepare adds, such as terasort's split points).
func checkParams(params map[string]string) error {
	if len(params) > MaxParams {
		return badRequest("%d parameters; a job takes at most %d", len(params), MaxParams)
	}
	total := 0
	for _, k := range slices.Sorted(maps.Keys(params)) {
		v := params[k]
		if len(v) > MaxParamLen {
			return badRequest("param %.64s: %d bytes, more than the limit of %d", k, len(v), MaxParamLen)
		}
		total += len(k) + len(v)
	}
	if total > MaxParamsLen {
		return badRequest("parameters of %d bytes together, more than the limit of %d", total, MaxParamsLen)
	}
	return nil
}

// checkShape checks what a job will run: its reduce partitions, map tasks,
// attempts and output path.
// ext is the output files' compression extension (".zst"), or "".
func checkShape(reducers, mapTasks, attempts int, output, ext string) error {
	switch {
	case reducers > MaxReducers:
		return badRequest("%d reducers; a job runs at most %d", reducers, MaxReducers)
	case mapTasks > MaxMapTasks:
		return badRequest("%d map tasks; a job runs at most %d (input blocks, or a generator's tasks)", mapTasks, MaxMapTasks)
	case attempts > MaxAttempts:
		return badRequest("max attempts %d; at most %d", attempts, MaxAttempts)
	}
	longest := max(len(partName(max(reducers-1, 0))), len(mapPartName(max(mapTasks-1, 0)))) + len(ext)
	if n := len(blockstore.FileKeyPrefix) + len(output) + 1 + longest; n > gossip.MaxKeyLen {
		return badRequest("output %.40s…: a path of %d bytes; its files' names would not fit the metadata's key limit (at most %d bytes for the directory)",
			output, len(output), gossip.MaxKeyLen-len(blockstore.FileKeyPrefix)-1-longest)
	}
	return nil
}

// checkRecord applies checkShape to a job record, for a job written before
// the limits were checked at the door.
func checkRecord(rec *JobRecord) error {
	return checkShape(rec.Reducers, rec.Splits(), rec.MaxAttempts, rec.Output, codec.Codec(rec.OutputCodec).Ext())
}

// checkCounters checks the counters one task reports. A task over a limit
// fails its job at once: its counters would be the same in every attempt.
func checkCounters(c job.Counters) error {
	n := 0
	for name := range c {
		if slices.Contains(shoalCounters, name) {
			continue
		}
		if len(name) > MaxCounterNameLen {
			return job.Permanent(fmt.Errorf("counter %.64q…: a name of %d bytes, more than the limit of %d", name, len(name), MaxCounterNameLen))
		}
		n++
	}
	if n > MaxCounters {
		return job.Permanent(fmt.Errorf("%d counters, more than the limit of %d per job", n, MaxCounters))
	}
	return nil
}

// failKind classifies a failed attempt.
type failKind uint8

const (
	// failUser: the job's code failed; counts against --max-attempts.
	failUser failKind = iota
	// failInfra: the attempt failed outside the job's code (a full disk,
	// an unreadable input, an output the file system refused); counts
	// against infraAttempts.
	failInfra
	// failPermanent: the job's code said no retry can help; fails the job
	// at once.
	failPermanent
)

func (k failKind) String() string {
	switch k {
	case failUser:
		return "user"
	case failInfra:
		return "infrastructure"
	case failPermanent:
		return "permanent"
	}
	return fmt.Sprintf("kind %d", uint8(k))
}

// failureKind classifies a task's error.
func failureKind(err error) failKind {
	switch {
	case job.IsPermanent(err):
		return failPermanent
	case worker.IsSystemError(err): // a shipped job's worker failed outside the job's code
		return failInfra
	case job.IsUserError(err):
		return failUser
	}
	return failInfra
}

// infraAttempts is how many attempts of a task may fail outside the job's
// code before the job fails: twice --max-attempts, so that nodes dying
// under a task do not fail a job that their replacements can finish, while
// a failure that recurs (a full disk) ends it.
func infraAttempts(maxAttempts int) int { return 2 * maxAttempts }

// failTally is every node's failed attempts of one task, by kind.
type failTally struct {
	user, infra int
	permanent   string // the error of a permanent failure, if any
	last        string // the last error recorded (of the first node in participant order that has one)
	lastNode    string
}

// failVerdict decides from a task's failed attempts whether they end its
// job, and with what message: at once for a permanent failure, after
// maxAttempts failures of the job's code, or after infraAttempts failures
// outside it.
func failVerdict(task, logHint string, t failTally, maxAttempts int) (string, bool) {
	if t.permanent != "" {
		// It names the task; the hint goes first so a cut keeps it.
		return fmt.Sprintf("%s (%s)", t.permanent, logHint), true
	}
	if t.user >= maxAttempts {
		return fmt.Sprintf("%s failed %d times (%s); last error: %s", task, t.user, logHint, t.last), true
	}
	if n := infraAttempts(maxAttempts); t.infra >= n {
		return fmt.Sprintf("%s failed %d times outside the job's code (%s); last error (on %s): %s", task, t.infra, logHint, t.lastNode, t.last), true
	}
	return "", false
}

// logHint is the command that shows a task's last attempt's log, for the
// error of a job that the task failed.
func logHint(jobID string, k taskKind, i int) string {
	return "its last attempt's log: shoal job logs " + jobID + " --task " + taskName(k, i)
}

// fitState makes a state record fit the metadata's value limit, whatever
// the job's records held: a job must always be able to end (be killed).
// It drops the counters if they do not fit, saying so in the error.
func fitState(st StateRecord) []byte {
	st.Error = truncate(st.Error, maxErrorLen)
	b := encode(st)
	if len(b) <= gossip.MaxValueLen {
		return b
	}
	st.Counters = nil
	note := "counters dropped: too large for the job's state record"
	if st.Error == "" {
		st.Error = note
	} else if !strings.Contains(st.Error, note) {
		st.Error += " (" + note + ")"
	}
	return encode(st)
}

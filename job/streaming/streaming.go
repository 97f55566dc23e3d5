// Package streaming is Hadoop Streaming for Shoal: a job whose mapper,
// combiner and reducer are any executables, talking lines of text on their
// standard input and output. Register adds it to a job.Registry as the job
// "streaming"; its parameters are:
//
//   - mapper (required): the map command, a shell command line run with
//     /bin/sh -c, such as "python3 mapper.py" or "tr -s ' ' '\n' | sort -u".
//   - reducer: the reduce command; empty or NONE makes a map-only job, whose
//     map output is written as is, one part-m-NNNNN file per map task.
//   - combiner: a command run over sorted runs of each map task's output
//     (see Combiner below); empty or NONE for none.
//   - cmdenv: NAME=VALUE lines, added to every command's environment.
//   - files: local or cluster paths, one a line, shipped into every task's
//     working directory under their base names (Hadoop's -file).
//   - input: how input files are cut into records: text (the default) or
//     kv (key<TAB>value lines).
//   - partitioner: hash (the default, also when empty) is the only one
//     for now.
//
// # The protocol
//
// A task runs one child process for all its records, not one per record or
// key group. It starts at the task's first record, or when the task ends
// if there were none, so that a reducer with no input still runs once, as
// in Hadoop.
//
// A mapper reads one line per input record on its standard input: for text
// input the line itself (the byte offset key is dropped, as in Hadoop), for
// kv input the record as job.AppendRecord writes it: key<TAB>value, or just
// key when the value is empty. A reducer (and a combiner) reads the
// key<TAB>value lines of its input pairs, one line per value, sorted by key
// and then by value, bytewise; an empty value gives a line of just the key.
// Every line a command writes to its standard output is split at its first
// tab into a key and a value (a line with no tab is all key, with an empty
// value) and emitted. So an identity reducer such as cat gives back exactly
// the records job.AppendRecord writes for its input. Lines end at "\n"
// only: a "\r" stays part of the line, as in Shoal's input formats. An
// output line longer than Config.MaxLineBytes (64 MiB) fails the task with
// an error wrapping job.ErrLineTooLong: the command is probably writing
// binary data.
//
// A command that stops reading its input early is not an error in itself:
// the rest of the task's input is dropped and its exit status decides, as
// for any command. (Hadoop fails on the broken pipe; whether a write hits one
// depends on pipe buffer sizes and timing, and Shoal's output must be the
// same in every run.)
//
// # Environment and working directory
//
// A command runs with this process's environment, less Shoal's own
// variables (SHOAL_*, such as SHOAL_SECRET), plus mapreduce_job_id,
// mapreduce_task_id (the TaskInfo's TaskID, such as m-000003),
// mapreduce_task_attempt_id (job ID, task ID and attempt joined by "_"),
// mapreduce_task_ismap (true or false), mapreduce_map_input_file (map
// tasks) and mapreduce_task_partition (reduce tasks), then the cmdenv pairs,
// which override. Its working directory is the task's job.TaskInfo.WorkDir,
// which holds the shipped files, and that directory is also appended to
// PATH, so that "mapper.py" finds a shipped, executable mapper.py as in
// Hadoop. A task without a WorkDir runs in a temporary directory of its own,
// removed when the task ends; but a job that ships files fails a task given
// no WorkDir.
//
// # Standard error
//
// A line reporter:counter:GROUP,NAME,N adds N to the counter "GROUP:NAME"
// and reporter:status:MESSAGE sets the task's status: tasks are
// job.CounterSource and job.StatusSource. Other lines are discarded but
// for the last 20 (cut to 256 bytes each), kept for error messages.
//
// # Failures and isolation
//
// A command that exits with a non-zero status or is killed by a signal
// fails its task with an *ExitError that quotes its last stderr lines.
// Each command runs in a process group of its own; when the command exits,
// whatever it left running in the group is killed. Tasks are job.Aborters:
// Abort kills the whole group and makes a Map, Reduce or Close blocked on
// the child return ErrAborted. Once Close or Abort has returned, no child
// process and no goroutine of the task is left. (A process that leaves the
// group, with setsid, escapes this; should it keep the command's output
// open, Close waits for it, until Abort.)
//
// # Combiner
//
// Hadoop runs a combiner over each sorted spill of a map task's output.
// Here the streaming mapper does it itself: it holds the map command's
// output pairs in a buffer of Config.CombineBufferBytes (32 MiB), and each
// time the buffer is full, and at the end of the task, sorts the pairs by
// key and value and pipes them through one run of the combiner command,
// emitting its output as the task's map output. So the job has no
// job.Job.NewCombiner: a Shoal combiner is a Reducer called once per key
// group, which for a command would mean a process per group, or pairs held
// back across calls that the shuffle does not expect. As for any combiner,
// the job's result must not depend on it; unlike Shoal's, job.RunSequential
// runs it too. COMBINE_INPUT_RECORDS and COMBINE_OUTPUT_RECORDS count its
// pairs.
//
// The package imports nothing of Shoal's but package job.
package streaming

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"syscall"

	"shoal.dev/shoal/job"
)

// Name is the name the streaming job is registered under.
const Name = "streaming"

// Config tunes the streaming job. The zero value of a field means its
// default.
type Config struct {
	// CombineBufferBytes bounds the map output a streaming mapper holds
	// before piping it through the combiner: its key and value bytes plus
	// 16 bytes a pair. A pair larger than the buffer is combined alone.
	// Default 32 MiB.
	CombineBufferBytes int
	// MaxLineBytes is the longest line, not counting its "\n", a command
	// may write to its standard output. Default job.MaxLineLength (64 MiB).
	MaxLineBytes int
	// Shell runs the commands: Shell -c COMMAND. Default "/bin/sh".
	Shell string
	// TempDir is where tasks without a TaskInfo.WorkDir (or with a
	// Credential) make their temporary working directory. Default
	// os.TempDir().
	TempDir string
	// Credential, if set, runs the children as this user and group (the
	// agent needs the privilege to). Their working directory is then their
	// own, in TempDir, with copies of the shipped files.
	Credential *syscall.Credential
	// Tracker, if set, learns of every child's process group.
	Tracker ProcTracker
	// Marker, if set, is put in every child's environment as
	// SHOAL_TASK_OWNER=Marker, so that SweepStale can find children a
	// crashed agent left behind. An agent uses one marker per data dir.
	Marker string

	// started, if set, is called with the process group of each child
	// started; for tests.
	started func(pgid int)
}

// DefaultConfig returns the default configuration.
func DefaultConfig() Config {
	return Config{
		CombineBufferBytes: 32 << 20,
		MaxLineBytes:       job.MaxLineLength,
		Shell:              "/bin/sh",
	}
}

// validate fills in defaults and rejects bad values.
func (c *Config) validate() error {
	d := DefaultConfig()
	switch {
	case c.CombineBufferBytes < 0:
		return fmt.Errorf("negative combine buffer size %d", c.CombineBufferBytes)
	case c.MaxLineBytes < 0:
		return fmt.Errorf("negative maximum line length %d", c.MaxLineBytes)
	}
	if c.CombineBufferBytes == 0 {
		c.CombineBufferBytes = d.CombineBufferBytes
	}
	if c.MaxLineBytes == 0 {
		c.MaxLineBytes = d.MaxLineBytes
	}
	if c.Shell == "" {
		c.Shell = d.Shell
	}
	if c.TempDir == "" {
		c.TempDir = os.TempDir()
	}
	return nil
}

// Register adds the streaming job, with the default configuration, to r.
// It panics if the name is already registered: that is a wiring mistake,
// found at startup.
func Register(r *job.Registry) {
	s, err := NewSpec(DefaultConfig())
	if err == nil {
		err = r.Register(s)
	}
	if err != nil {
		panic(fmt.Sprintf("streaming: %v", err))
	}
}

// NewSpec returns the streaming job's Spec, named Name, with configuration
// cfg. It rejects a bad configuration.
func NewSpec(cfg Config) (job.Spec, error) {
	if err := cfg.validate(); err != nil {
		return job.Spec{}, fmt.Errorf("streaming config: %w", err)
	}
	return job.Spec{
		Name:  Name,
		Usage: "run any executables as mapper, combiner and reducer, on lines of text (Hadoop Streaming)",
		Params: []job.Param{
			{Name: "mapper", Required: true, Usage: "the map command, run with /bin/sh -c; it reads input lines and writes key<TAB>value lines"},
			{Name: "reducer", Usage: "the reduce command, reading key<TAB>value lines sorted by key; empty or NONE for a map-only job"},
			{Name: "combiner", Usage: "a command run over sorted runs of each map task's output, like the reducer; empty or NONE for none"},
			{Name: "cmdenv", Usage: "NAME=VALUE lines added to the commands' environment"},
			{Name: "files", Usage: "files to ship into each task's working directory, one path a line"},
			{Name: "input", Default: "text", Usage: "input format: text (the command reads each line) or kv (key<TAB>value lines)"},
			{Name: "partitioner", Usage: "how map output keys are split among reducers: hash (the default) or keyfield (Hadoop's KeyFieldBasedPartitioner, with partitioner_options)"},
			{Name: "partitioner_options", Usage: "keyfield partitioner's fields, as -k1,1 (mapreduce.partition.keypartitioner.options)"},
			{Name: "key_field_separator", Usage: "separator of a key's fields for the keyfield partitioner and the comparator options (mapreduce.map.output.key.field.separator; default tab)"},
			{Name: "comparator_options", Usage: "key order as -k1,1 -k2,2 (mapreduce.partition.keycomparator.options): only orders that are Shoal's bytewise order are taken"},
			{Name: "map_output_separator", Usage: "separator between key and value in the mapper's output lines (stream.map.output.field.separator; default tab)"},
			{Name: "map_output_key_fields", Usage: "fields of a mapper's output line that make the key (stream.num.map.output.key.fields; default 1)"},
			{Name: "reduce_output_separator", Usage: "the same for the reducer's output lines (stream.reduce.output.field.separator)"},
			{Name: "reduce_output_key_fields", Usage: "the same for the reducer's output lines (stream.num.reduce.output.key.fields)"},
			{Name: "pack", Usage: "true packs small input files into shared map tasks (CombineTextInputFormat)"},
		},
		Build:        func(params map[string]string) (*job.Job, error) { return build(&cfg, params) },
		RunsCommands: true,
	}, nil
}

// spec is a streaming job's parsed parameters.
type spec struct {
	mapper, reducer, combiner string // reducer and combiner "" for none
	cmdenv                    []string
	files                     []string
	input                     job.InputFormat
	mapSplit, reduceSplit     fieldSplit // how output lines become key and value
}

// build parses and checks params and returns the job.
func build(cfg *Config, params map[string]string) (*job.Job, error) {
	var s spec
	if s.mapper = strings.TrimSpace(params["mapper"]); s.mapper == "" {
		return nil, errors.New("param mapper: must not be empty")
	}
	s.reducer = noneIsEmpty(params["reducer"])
	s.combiner = noneIsEmpty(params["combiner"])
	if s.combiner != "" && s.reducer == "" {
		return nil, errors.New("param combiner: a map-only job (no reducer) has no combiner")
	}
	var err error
	if s.cmdenv, err = parseCmdenv(params["cmdenv"]); err != nil {
		return nil, fmt.Errorf("param cmdenv: %w", err)
	}
	if s.files, err = parseFiles(params["files"]); err != nil {
		return nil, fmt.Errorf("param files: %w", err)
	}
	if s.input, err = job.ParseInputFormat(strings.TrimSpace(params["input"])); err != nil {
		return nil, fmt.Errorf("param input: %w", err)
	}
	if s.mapSplit, err = parseFieldSplit(params["map_output_separator"], params["map_output_key_fields"]); err != nil {
		return nil, fmt.Errorf("param map_output_key_fields: %w", err)
	}
	if s.reduceSplit, err = parseFieldSplit(params["reduce_output_separator"], params["reduce_output_key_fields"]); err != nil {
		return nil, fmt.Errorf("param reduce_output_key_fields: %w", err)
	}
	keySep := []byte{'\t'}
	if v := params["key_field_separator"]; v != "" {
		keySep = []byte(unescape(v))
	}
	var part job.Partitioner
	switch p := strings.TrimSpace(params["partitioner"]); p {
	case "", "hash":
		if params["partitioner_options"] != "" {
			return nil, errors.New("param partitioner_options: only the keyfield partitioner takes options")
		}
	case "keyfield":
		specs, err := parseKeySpecs(params["partitioner_options"])
		if err != nil {
			return nil, fmt.Errorf("param partitioner_options: %w", err)
		}
		part = &keyFieldPartitioner{sep: keySep, specs: specs}
	default:
		return nil, fmt.Errorf("param partitioner: unknown partitioner %q; supported: hash (the default), keyfield", p)
	}
	if o := params["comparator_options"]; o != "" {
		specs, err := parseKeySpecs(o)
		if err == nil {
			err = checkBytewiseComparator(specs)
		}
		if err != nil {
			return nil, fmt.Errorf("param comparator_options: %w", err)
		}
	}
	pack := false
	switch v := strings.TrimSpace(params["pack"]); v {
	case "", "false":
	case "true":
		pack = true
	default:
		return nil, fmt.Errorf("param pack: %q, want true or false", v)
	}

	j := &job.Job{
		Input:       s.input,
		Partitioner: part,
		PackInputs:  pack,
		NewMapper: func(ti job.TaskInfo) (job.Mapper, error) {
			return newMapper(cfg, &s, ti), nil
		},
		MapOnly: s.reducer == "",
		Files:   s.files,
	}
	if !j.MapOnly {
		j.NewReducer = func(ti job.TaskInfo) (job.Reducer, error) {
			return newReducer(cfg, &s, ti), nil
		}
	}
	return j, nil
}

// noneIsEmpty trims a command and returns "" for NONE.
func noneIsEmpty(cmd string) string {
	cmd = strings.TrimSpace(cmd)
	if cmd == "NONE" {
		return ""
	}
	return cmd
}

// parseCmdenv parses NAME=VALUE lines, skipping blank ones. A "\r" ending
// a line is dropped; the value is otherwise kept as is.
func parseCmdenv(s string) ([]string, error) {
	var env []string
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, _, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d %q: want NAME=VALUE", i+1, line)
		}
		if !validEnvName(name) {
			return nil, fmt.Errorf("line %d: bad variable name %q: want a letter or '_', then letters, digits or '_'", i+1, name)
		}
		env = append(env, line)
	}
	return env, nil
}

// validEnvName reports whether s is a portable environment variable name.
func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && '0' <= c && c <= '9':
		default:
			return false
		}
	}
	return true
}

// parseFiles parses the files to ship, one path a line, blank lines
// skipped. Two files may not have the same base name.
func parseFiles(s string) ([]string, error) {
	var files []string
	from := make(map[string]string)
	for _, line := range strings.Split(s, "\n") {
		f := strings.TrimSpace(line)
		if f == "" {
			continue
		}
		base := path.Base(f)
		if base == "." || base == ".." || base == "/" {
			return nil, fmt.Errorf("%q is not a file", f)
		}
		if prev, ok := from[base]; ok {
			return nil, fmt.Errorf("%s and %s have the same name %s in the working directory", prev, f, base)
		}
		from[base] = f
		files = append(files, f)
	}
	return files, nil
}

package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"shoal.dev/shoal/client"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"shoal.dev/shoal/codec"
	"shoal.dev/shoal/disk"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/job/builtin"
	"shoal.dev/shoal/scheduler"
)

// counterOrder is the order counters print in: Hadoop's, then any others.
var counterOrder = []string{
	job.MAP_INPUT_RECORDS, job.MAP_OUTPUT_RECORDS, job.MAP_OUTPUT_BYTES,
	job.COMBINE_INPUT_RECORDS, job.COMBINE_OUTPUT_RECORDS, job.SPILLED_RECORDS,
	job.REDUCE_SHUFFLE_BYTES, job.REDUCE_SHUFFLE_REMOTE_BYTES, job.REDUCE_SHUFFLE_WIRE_BYTES, job.REDUCE_INPUT_GROUPS, job.REDUCE_INPUT_RECORDS,
	job.REDUCE_OUTPUT_RECORDS, job.TOTAL_LAUNCHED_MAPS, job.TOTAL_LAUNCHED_REDUCES,
	job.DATA_LOCAL_MAPS, job.NUM_FAILED_MAPS, job.NUM_FAILED_REDUCES,
}

func jobCommand(jobs []job.Spec) *ucli.Command {
	// idCmd is a command on one job ID.
	idCmd := func(name, usage string, action func(c *ucli.Context, cl *client.Client, id string) error) *ucli.Command {
		return &ucli.Command{Name: name, Usage: usage, ArgsUsage: "ID", Flags: clientFlags(), Action: func(c *ucli.Context) error {
			if err := exactArgs(c, 1, "ID"); err != nil {
				return err
			}
			cl, err := dial(c)
			if err != nil {
				return err
			}
			return action(c, cl, c.Args().First())
		}}
	}
	return &ucli.Command{
		Name:  "job",
		Usage: "run and watch MapReduce jobs",
		Subcommands: []*ucli.Command{
			{
				Name:      "run",
				Usage:     "run a job (" + strings.Join(jobNames(jobs), ", ") + ") and wait for it",
				ArgsUsage: "NAME",
				Flags: append(clientFlags(),
					&ucli.StringSliceFlag{Name: "input", Aliases: []string{"i"}, Usage: "input file, directory or quoted glob (repeatable, or comma-separated)"},
					&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output directory; must not exist"},
					&ucli.IntFlag{Name: "reducers", Usage: "reduce tasks (default: the job's)"},
					&ucli.StringSliceFlag{Name: "param", Aliases: []string{"p"}, Usage: "job parameter K=V (repeatable)"},
					&ucli.IntFlag{Name: "max-attempts", Value: scheduler.DefaultMaxAttempts, Usage: "attempts per task before the job fails"},
					&ucli.IntFlag{Name: "replication", Usage: "replication of the output files (default 3, capped at the cluster size)"},
					&ucli.DurationFlag{Name: "task-timeout", Value: scheduler.DefaultTaskTimeout, Usage: "fail and retry a task attempt that makes no progress for this long (0: never)"},
					&ucli.BoolFlag{Name: "no-speculation", Usage: "start no backup attempts of this job's straggling tasks"},
					&ucli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "print the job ID and return at once"},
					&ucli.BoolFlag{Name: "local", Usage: "run in this process on local files, sequentially (no cluster)"},
					&ucli.StringFlag{Name: "output-compression", Usage: "compress the output parts: gzip or zstd (part-r-00000.zst)"},
					&ucli.StringFlag{Name: "map-output-compression", Usage: "compress map output on its way to the reducers: s2 (the default), zstd or none"},
					&ucli.Int64Flag{Name: "max-split-bytes", Usage: "largest split packed from small input files (default: 128 MiB; -1: pack none)"},
				),
				Action: jobRun,
			},
			idCmd("status", "show a job's state and progress", jobStatusCmd),
			idCmd("wait", "wait for a job to end, showing progress", func(c *ucli.Context, cl *client.Client, id string) error {
				return waitJob(c, cl, id)
			}),
			idCmd("kill", "stop a job on every node", func(c *ucli.Context, cl *client.Client, id string) error {
				st, err := cl.Kill(c.Context, id)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "%s %s\n", st.ID, st.State)
				return nil
			}),
			{
				Name:      "logs",
				Usage:     "list a job's task attempts and their logs, or print one attempt's log (--task)",
				ArgsUsage: "ID",
				Flags: append(clientFlags(),
					&ucli.StringFlag{Name: "task", Aliases: []string{"t"}, Usage: "print this task's log (m-000003, r-00001)"},
					&ucli.IntFlag{Name: "attempt", Aliases: []string{"n"}, Usage: "with --task: this attempt (from 1, in the order they started; default the last)"},
					&ucli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "with --task: go on printing as the log grows, until the attempt ends"},
				),
				Action: jobLogs,
			},
			idCmd("counters", "print a job's counters", func(c *ucli.Context, cl *client.Client, id string) error {
				st, err := cl.Job(c.Context, id)
				if err != nil {
					return err
				}
				printCounters(c.App.Writer, st.Counters)
				return nil
			}),
			{
				Name:  "list",
				Usage: "list jobs, newest first",
				Flags: clientFlags(),
				Action: func(c *ucli.Context) error {
					if err := exactArgs(c, 0, ""); err != nil {
						return err
					}
					cl, err := dial(c)
					if err != nil {
						return err
					}
					sts, err := cl.Jobs(c.Context)
					if err != nil {
						return err
					}
					tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tNAME\tSTATE\tMAP\tREDUCE\tSUBMITTED\tOUTPUT")
					for _, st := range sts {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%3.0f%%\t%3.0f%%\t%s\t%s\n", st.ID, st.Name, st.State, 100*st.MapProgress(), 100*st.ReduceProgress(),
							time.Unix(0, st.SubmittedAt).Local().Format(time.DateTime), st.Output)
					}
					return tw.Flush()
				},
			},
		},
	}
}

func jobNames(jobs []job.Spec) []string {
	r, err := newRegistry(jobs)
	if err != nil {
		return nil // Main refuses such jobs before it shows any help
	}
	var names []string
	for _, s := range r.Specs() {
		names = append(names, s.Name)
	}
	return names
}

func parseParams(kvs []string) (map[string]string, error) {
	params := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("--param %q: want KEY=VALUE", kv)}
		}
		params[k] = v
	}
	return params, nil
}

func jobRun(c *ucli.Context) error {
	if err := exactArgs(c, 1, "NAME --input PATH --output DIR"); err != nil {
		return err
	}
	params, err := parseParams(c.StringSlice("param"))
	if err != nil {
		return err
	}
	var inputs []string
	for _, in := range c.StringSlice("input") {
		for _, p := range strings.Split(in, ",") {
			if p = strings.TrimSpace(p); p != "" {
				inputs = append(inputs, p)
			}
		}
	}
	if c.String("output") == "" {
		return usageError{errors.New("--output is required")}
	}
	if c.IsSet("reducers") && c.Int("reducers") < 1 {
		return usageError{fmt.Errorf("--reducers must be at least 1, got %d", c.Int("reducers"))}
	}
	if c.Int("max-attempts") < 1 {
		return usageError{fmt.Errorf("--max-attempts must be at least 1, got %d", c.Int("max-attempts"))}
	}
	outCodec, err := codec.Parse(c.String("output-compression"))
	if err != nil {
		return usageError{fmt.Errorf("--output-compression: %w", err)}
	}
	if c.Bool("local") {
		return runLocal(c, c.Args().First(), params, inputs, c.String("output"), c.Int("reducers"), outCodec)
	}
	cl, err := dial(c)
	if err != nil {
		return err
	}
	var binary string
	if ownJob(c, c.Args().First()) {
		if binary, err = shipSelf(c, cl); err != nil {
			return err
		}
	}
	req := client.SubmitRequest{
		Name: c.Args().First(), Params: params, Inputs: inputs, Output: c.String("output"),
		Reducers: c.Int("reducers"), MaxAttempts: c.Int("max-attempts"), Replication: c.Int("replication"),
		TaskTimeout: c.Duration("task-timeout").String(), Binary: binary,
		NoSpeculativeMaps: c.Bool("no-speculation"), NoSpeculativeReduces: c.Bool("no-speculation"),
		OutputCompression: string(outCodec), MaxSplitBytes: c.Int64("max-split-bytes"),
		MapOutputCompression: c.String("map-output-compression"),
	}
	st, err := cl.Submit(c.Context, req)
	if ae := (*client.Error)(nil); binary != "" && errors.As(err, &ae) && ae.Status == http.StatusGone {
		// The clean-up of unused programs deleted it after shipSelf found
		// it stored: store it again, once.
		fmt.Fprintf(c.App.ErrWriter, "the cluster deleted this program as unused just as it was submitted; shipping it again\n")
		if _, err = shipSelf(c, cl); err != nil {
			return err
		}
		st, err = cl.Submit(c.Context, req)
	}
	if err != nil {
		return err
	}
	if c.Bool("detach") {
		fmt.Fprintln(c.App.Writer, st.ID)
		return nil
	}
	fmt.Fprintf(c.App.ErrWriter, "submitted %s: %d maps, %d reduces, output %s\n", st.ID, st.Maps, st.Reducers, st.Output)
	return waitJob(c, cl, st.ID)
}

// ownJob reports whether name is one of the jobs given to Main, which the
// agents may lack.
func ownJob(c *ucli.Context, name string) bool {
	jobs, _ := c.App.Metadata[metaJobs].([]job.Spec)
	return slices.ContainsFunc(jobs, func(s job.Spec) bool { return s.Name == name })
}

// shipSelf stores this program in the cluster, under its SHA-256, unless
// it is stored already, and returns the SHA-256 (hex).
func shipSelf(c *ucli.Context, cl *client.Client) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find this program to ship it: %w", err)
	}
	f, err := os.Open(exe)
	if err != nil {
		return "", fmt.Errorf("read this program to ship it: %w", err)
	}
	h := sha256.New()
	size, err := io.Copy(h, f)
	f.Close()
	if err != nil {
		return "", fmt.Errorf("read this program to ship it: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	dst := client.BinaryPath(sum)
	if _, err := cl.Stat(c.Context, dst); err == nil {
		fmt.Fprintf(c.App.ErrWriter, "program %s already stored as %s\n", filepath.Base(exe), dst)
		return sum, nil
	} else if ae := (*client.Error)(nil); !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		return "", err
	}
	_, err = putLocal(c, cl, exe, dst, client.PutOptions{})
	if ae := (*client.Error)(nil); errors.As(err, &ae) && ae.Status == http.StatusConflict {
		err = nil // stored by a submission at the same time: the same bytes
	}
	if err != nil {
		return "", fmt.Errorf("ship this program: %w", err)
	}
	fmt.Fprintf(c.App.ErrWriter, "shipped program %s (%d bytes) as %s\n", filepath.Base(exe), size, dst)
	return sum, nil
}

// progressEvery is how often waitJob refreshes the progress line.
const progressEvery = 300 * time.Millisecond

// waitJob follows a job until it ends, printing progress every
// progressEvery; the agent holds each answer until the job ends or
// progressEvery passes, so the result is printed as soon as the agent
// learns of the end. When the agent it asks goes away, it asks another
// member: any node reports any job.
func waitJob(c *ucli.Context, cl *client.Client, id string) error {
	others := otherAgents(c, cl)
	term := isTerminal(c.App.ErrWriter)
	last := ""
	for {
		asked := time.Now()
		st, err := cl.JobWait(c.Context, id, progressEvery)
		if errors.Is(err, client.ErrUnreachable) && len(others) > 0 {
			fmt.Fprintf(c.App.ErrWriter, "\nshoal: %s is unreachable; asking %s\n", cl.Addr(), others[0].Addr())
			cl, others = others[0], others[1:]
			continue
		}
		if err != nil {
			return err
		}
		line := fmt.Sprintf("map %3.0f%% reduce %3.0f%%", 100*st.MapProgress(), 100*st.ReduceProgress())
		if line != last {
			if term {
				fmt.Fprintf(c.App.ErrWriter, "\r%s ", line)
			} else {
				fmt.Fprintln(c.App.ErrWriter, line)
			}
			last = line
		}
		if st.State != client.StateRunning {
			if term {
				fmt.Fprintln(c.App.ErrWriter)
			}
			return jobEnded(c, st)
		}
		// An agent older than the wait answers at once: ask again only
		// after progressEvery.
		t := time.NewTimer(progressEvery - time.Since(asked))
		select {
		case <-c.Context.Done():
			t.Stop()
			return c.Context.Err()
		case <-t.C:
		}
	}
}

// otherAgents returns clients for the other members' APIs, for failover.
func otherAgents(c *ucli.Context, cl *client.Client) []*client.Client {
	return agentList(c, cl)[1:]
}

// jobEnded prints an ended job's report in one write: line by line, with
// the counters' cells and padding each a write of their own, it was some
// 80 system calls, each waking whatever reads the CLI's output.
func jobEnded(c *ucli.Context, st client.JobStatus) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "job %s %s in %s\n", st.ID, st.State, time.Duration(st.EndedAt-st.SubmittedAt).Round(time.Millisecond))
	printCounters(&b, st.Counters)
	if st.State == client.StateSucceeded {
		fmt.Fprintf(&b, "output: %s (shoal fs cat '%s/part-*')\n", st.Output, st.Output)
	}
	c.App.Writer.Write(b.Bytes())
	switch st.State {
	case client.StateSucceeded:
		return nil
	case client.StateFailed:
		return fmt.Errorf("job %s failed: %s", st.ID, st.Error)
	}
	return fmt.Errorf("job %s %s", st.ID, st.State)
}

func jobStatusCmd(c *ucli.Context, cl *client.Client, id string) error {
	st, err := cl.Job(c.Context, id)
	if err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "job:       %s (%s)\n", st.ID, st.Name)
	fmt.Fprintf(w, "state:     %s\n", st.State)
	if st.Error != "" {
		fmt.Fprintf(w, "error:     %s\n", st.Error)
	}
	if st.Note != "" {
		fmt.Fprintf(w, "note:      %s\n", st.Note)
	}
	fmt.Fprintf(w, "progress:  map %3.0f%% (%d/%d)  reduce %3.0f%% (%d/%d)\n", 100*st.MapProgress(), st.MapsDone, st.Maps, 100*st.ReduceProgress(), st.ReducesDone, st.Reducers)
	fmt.Fprintf(w, "output:    %s\n", st.Output)
	if st.Binary != "" {
		fmt.Fprintf(w, "program:   %s (shipped)\n", client.BinaryPath(st.Binary))
	}
	fmt.Fprintf(w, "submitted: %s by %s; nodes %s\n", time.Unix(0, st.SubmittedAt).Local().Format(time.DateTime), st.SubmittedBy, strings.Join(st.Participants, ","))
	return nil
}

func printCounters(w io.Writer, cs job.Counters) {
	names := slices.Clone(counterOrder)
	var extra []string
	for k := range cs {
		if !slices.Contains(counterOrder, k) {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	// The tabwriter writes each cell and its padding apart: gather them
	// for one write.
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', tabwriter.AlignRight)
	for _, k := range append(names, extra...) {
		if v, ok := cs[k]; ok || slices.Contains(counterOrder, k) {
			fmt.Fprintf(tw, "  %s\t%s\t\n", k, counterText(k, v))
		}
	}
	tw.Flush()
	w.Write(b.Bytes())
}

// counterText is how a counter prints: a checksum (teragen's CHECKSUM) in
// hex of its 64 bits, the notation teravalidate's checksum parameter and
// Hadoop use; every other counter in decimal.
func counterText(name string, v int64) string {
	if strings.HasSuffix(name, "CHECKSUM") {
		return strconv.FormatUint(uint64(v), 16)
	}
	return strconv.FormatInt(v, 10)
}

// openLocalInput opens a local input file, decompressing it by its name's
// extension.
func openLocalInput(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	zr, err := codec.NewReader(codec.ForPath(path), bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("input %s: %w", path, err)
	}
	return &localInput{r: zr, f: f, path: path}, nil
}

type localInput struct {
	r    io.ReadCloser
	f    *os.File
	path string
}

func (l *localInput) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	var ce *codec.CorruptError
	if errors.As(err, &ce) {
		err = fmt.Errorf("input %s: %w", l.path, err)
	}
	return n, err
}

func (l *localInput) Close() error {
	l.r.Close()
	return l.f.Close()
}

// createLocalOutput creates a local output part, compressed with c (its
// name then ends in c's extension).
func createLocalOutput(path string, c codec.Codec) (io.WriteCloser, error) {
	f, err := os.Create(path + c.Ext())
	if err != nil {
		return nil, err
	}
	zw, err := codec.NewWriter(c, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &localOutput{zw: zw, f: f}, nil
}

type localOutput struct {
	zw io.WriteCloser
	f  *os.File
}

func (l *localOutput) Write(p []byte) (int, error) { return l.zw.Write(p) }

func (l *localOutput) Close() error {
	err := l.zw.Close()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// localInputFiles is what a --local input names: the file, or every file
// below the directory, sorted, leaving out names that start with "_" (a
// job's _SUCCESS) as a cluster input directory does.
func localInputFiles(p string) ([]string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{p}, nil
	}
	var out []string
	err = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if q != p && strings.HasPrefix(d.Name(), "_") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			out = append(out, q)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b string) int { return strings.Compare(filepath.ToSlash(a), filepath.ToSlash(b)) })
	return out, err
}

// runLocal runs a job with the sequential runner on local files: inputs
// named .gz, .bz2 or .zst are decompressed, and output parts compressed
// with out.
func runLocal(c *ucli.Context, name string, params map[string]string, inputs []string, output string, reducers int, out codec.Codec) error {
	reg, err := registry(c)
	if err != nil {
		return err
	}
	j0, err := reg.Resolve(name, params)
	if err != nil {
		return err
	}
	if _, err := os.Stat(output); err == nil {
		return fmt.Errorf("output %s already exists", output)
	}
	var ins []job.Input
	seen := map[string]bool{}
	for _, in := range inputs {
		files, err := localInputFiles(in)
		if err != nil {
			return err
		}
		for _, p := range files {
			if !seen[p] {
				seen[p] = true
				ins = append(ins, job.Input{Path: p, Open: func() (io.ReadCloser, error) { return openLocalInput(p) }})
			}
		}
	}
	if len(ins) == 0 && j0.Generate == 0 {
		return usageError{errors.New("--input is required")}
	}
	j, params, err := reg.ResolvePrepared(c.Context, name, params, job.NewSampler(ins, j0.Input), reducers)
	if err != nil {
		return err
	}
	reducers = j.NumReducers(reducers)
	if err := os.MkdirAll(output, 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	counters, err := job.RunSequential(ctx, j, "local", params, ins, reducers, func(name string) (io.WriteCloser, error) {
		return createLocalOutput(filepath.Join(output, name), out)
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(output, "_SUCCESS"), nil, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "job local succeeded\n")
	printCounters(c.App.Writer, counters)
	fmt.Fprintf(c.App.Writer, "output: %s\n", output)
	return nil
}

func genCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "gen",
		Usage: "generate sample data",
		Subcommands: []*ucli.Command{{
			Name:  "text",
			Usage: "write a Zipf-distributed English-like corpus to stdout or --output",
			Flags: []ucli.Flag{
				&ucli.StringFlag{Name: "bytes", Value: "64MB", Usage: "how much, e.g. 50MB, 1GB"},
				&ucli.Uint64Flag{Name: "seed", Value: 1, Usage: "the same seed gives the same text"},
				&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "local file (default stdout)"},
			},
			Action: func(c *ucli.Context) error {
				if err := exactArgs(c, 0, "--bytes N --seed S"); err != nil {
					return err
				}
				n, err := parseSize(c.String("bytes"))
				if err != nil {
					return usageError{fmt.Errorf("--bytes: %w", err)}
				}
				out := c.String("output")
				if out == "" {
					out = "-"
				}
				return writeLocal(c, out, func(w io.Writer) error {
					return builtin.GenerateText(w, n, c.Uint64("seed"))
				})
			},
		}},
	}
}

// jobLogs is `shoal job logs`.
func jobLogs(c *ucli.Context) error {
	if err := exactArgs(c, 1, "ID"); err != nil {
		return err
	}
	task := c.String("task")
	if task == "" && (c.IsSet("attempt") || c.Bool("follow")) {
		return usageError{errors.New("--attempt and --follow need --task")}
	}
	if c.IsSet("attempt") && c.Int("attempt") < 1 {
		return usageError{fmt.Errorf("--attempt counts from 1, got %d", c.Int("attempt"))}
	}
	cl, err := dial(c)
	if err != nil {
		return err
	}
	id := c.Args().First()
	if task != "" {
		return cl.TaskLog(c.Context, id, task, c.Int("attempt"), c.Bool("follow"), c.App.Writer)
	}
	ls, err := cl.TaskLogs(c.Context, id, "")
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tATTEMPT\tNODE\tRESULT\tSTART\tDURATION\tLOG\tIN\tOUT\tINPUT")
	for _, a := range ls.Attempts {
		dur := "-"
		if !a.End.IsZero() {
			dur = a.End.Sub(a.Start).Round(time.Millisecond).String()
		}
		in, out, locality := "-", "-", "-"
		if a.IO != nil {
			in, out = disk.Size(a.IO.In), disk.Size(a.IO.Out)
			if a.IO.Locality != "" {
				locality = a.IO.Locality
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d B\t%s\t%s\t%s\n", a.Task, a.Attempt, a.Node, a.Result, a.Start.Local().Format(time.DateTime), dur, a.Size, in, out, locality)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(ls.Missing) > 0 {
		fmt.Fprintf(c.App.ErrWriter, "shoal: %s did not answer; their attempts are not listed\n", strings.Join(ls.Missing, ", "))
	}
	if ls.Cut {
		fmt.Fprintf(c.App.ErrWriter, "shoal: a node listed only its first %d attempts; use --task to see a task's\n", 10000)
	}
	if len(ls.Attempts) > 0 {
		fmt.Fprintf(c.App.ErrWriter, "print one with: shoal job logs %s --task TASK [--attempt N]\n", id)
	}
	return nil
}

package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/scheduler"
)

func streamingCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "streaming",
		Usage: "run any executables as mapper, combiner and reducer (Hadoop Streaming's flags; - or -- both work)",
		Flags: append(clientFlags(),
			&ucli.StringSliceFlag{Name: "input", Usage: "input file, directory or quoted glob (repeatable)"},
			&ucli.StringFlag{Name: "output", Usage: "output directory; must not exist"},
			&ucli.StringFlag{Name: "mapper", Usage: "command run for every map task; reads lines on stdin, writes key\\tvalue lines"},
			&ucli.StringFlag{Name: "combiner", Usage: "command run over sorted map output before the shuffle"},
			&ucli.StringFlag{Name: "reducer", Usage: "command run for every partition, reading key\\tvalue lines sorted by key; NONE for map-only"},
			&ucli.StringSliceFlag{Name: "file", Usage: "local file shipped into every task's working directory (repeatable)"},
			&ucli.IntFlag{Name: "numReduceTasks", Usage: "reduce tasks (default 1)"},
			&ucli.StringSliceFlag{Name: "cmdenv", Usage: "K=V set in the commands' environment (repeatable)"},
			&ucli.StringFlag{Name: "partitioner", Usage: "partitioner: hash (default)"},
			&ucli.IntFlag{Name: "max-attempts", Value: scheduler.DefaultMaxAttempts, Usage: "attempts per task before the job fails"},
			&ucli.StringSliceFlag{Name: "D", Usage: "job property NAME=VALUE (repeatable); known: mapreduce.task.timeout=MS (0: never), mapreduce.map.speculative=true|false, mapreduce.reduce.speculative=true|false"},
			&ucli.BoolFlag{Name: "no-speculation", Usage: "start no backup attempts of this job's straggling tasks"},
			&ucli.DurationFlag{Name: "task-timeout", Value: scheduler.DefaultTaskTimeout, Usage: "fail and retry a task attempt that makes no progress for this long (0: never)"},
			&ucli.BoolFlag{Name: "detach", Usage: "print the job ID and return at once"},
		),
		Action: runStreaming,
	}
}

func runStreaming(c *ucli.Context) error {
	if c.NArg() > 0 {
		return usageError{fmt.Errorf("streaming takes flags only, got %q", c.Args().First())}
	}
	switch {
	case len(c.StringSlice("input")) == 0:
		return usageError{errors.New("-input is required")}
	case c.String("output") == "":
		return usageError{errors.New("-output is required")}
	case strings.TrimSpace(c.String("mapper")) == "":
		return usageError{errors.New("-mapper is required")}
	case c.IsSet("numReduceTasks") && c.Int("numReduceTasks") < 1 && c.String("reducer") != "NONE":
		return usageError{fmt.Errorf("-numReduceTasks must be at least 1, got %d", c.Int("numReduceTasks"))}
	}
	timeout := c.Duration("task-timeout")
	noSpec := [2]bool{c.Bool("no-speculation"), c.Bool("no-speculation")} // maps, reduces
	for _, kv := range c.StringSlice("D") {
		p, err := streamingProperty(kv)
		if err != nil {
			return usageError{err}
		}
		switch {
		case p.speculative != nil:
			if *p.speculative && c.Bool("no-speculation") {
				return usageError{fmt.Errorf("-D %s and --no-speculation disagree", kv)}
			}
			noSpec[p.kind] = !*p.speculative
		case c.IsSet("task-timeout") && p.timeout != timeout:
			return usageError{fmt.Errorf("-D %s and --task-timeout %s disagree", kv, timeout)}
		default:
			timeout = p.timeout
		}
	}
	for _, kv := range c.StringSlice("cmdenv") {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return usageError{fmt.Errorf("-cmdenv %q: want NAME=VALUE", kv)}
		}
	}
	cl, err := client(c)
	if err != nil {
		return err
	}
	var shipped []string
	for _, local := range c.StringSlice("file") {
		p, err := shipFile(c, cl, local)
		if err != nil {
			return err
		}
		shipped = append(shipped, p)
	}
	params := map[string]string{"mapper": c.String("mapper")}
	for _, name := range []string{"combiner", "reducer", "partitioner"} {
		if v := c.String(name); v != "" {
			params[name] = v
		}
	}
	if len(shipped) > 0 {
		params["files"] = strings.Join(shipped, "\n")
	}
	if env := c.StringSlice("cmdenv"); len(env) > 0 {
		params["cmdenv"] = strings.Join(env, "\n")
	}
	st, err := cl.Submit(c.Context, scheduler.SubmitRequest{
		Name: "streaming", Params: params, Inputs: c.StringSlice("input"), Output: c.String("output"),
		Reducers: c.Int("numReduceTasks"), MaxAttempts: c.Int("max-attempts"),
		TaskTimeout:       timeout.String(),
		NoSpeculativeMaps: noSpec[0], NoSpeculativeReduces: noSpec[1],
	})
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

// streamingProp is one -D property Shoal knows: a task timeout, or
// whether the job's maps (kind 0) or reduces (kind 1) may speculate.
type streamingProp struct {
	timeout     time.Duration
	speculative *bool
	kind        int
}

// streamingProperty parses one -D NAME=VALUE of Hadoop Streaming. Shoal
// knows mapreduce.task.timeout (milliseconds, 0 for none),
// mapreduce.map.speculative and mapreduce.reduce.speculative (true or
// false); any other name is an error rather than silently ignored.
func streamingProperty(kv string) (streamingProp, error) {
	name, v, ok := strings.Cut(kv, "=")
	if !ok || name == "" {
		return streamingProp{}, fmt.Errorf("-D %q: want NAME=VALUE", kv)
	}
	switch name {
	case "mapreduce.task.timeout":
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 || ms > int64(scheduler.MaxTaskTimeout/time.Millisecond) {
			return streamingProp{}, fmt.Errorf("-D mapreduce.task.timeout=%s: want milliseconds, 0 (never) to %d", v, scheduler.MaxTaskTimeout/time.Millisecond)
		}
		return streamingProp{timeout: time.Duration(ms) * time.Millisecond}, nil
	case "mapreduce.map.speculative", "mapreduce.reduce.speculative":
		b, err := strconv.ParseBool(v)
		if err != nil || v != "true" && v != "false" {
			return streamingProp{}, fmt.Errorf("-D %s=%s: want true or false", name, v)
		}
		p := streamingProp{speculative: &b}
		if name == "mapreduce.reduce.speculative" {
			p.kind = 1
		}
		return p, nil
	}
	return streamingProp{}, fmt.Errorf("-D %s: unknown property; Shoal knows mapreduce.task.timeout, mapreduce.map.speculative and mapreduce.reduce.speculative", name)
}

// shipFile stores a local file in the cluster under a name derived from its
// content, so every task can fetch exactly these bytes, and returns the
// cluster path.
func shipFile(c *ucli.Context, cl *peer.Client, local string) (string, error) {
	f, err := os.Open(local)
	if err != nil {
		return "", fmt.Errorf("-file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("-file: %w", err)
	}
	if fi.IsDir() {
		return "", fmt.Errorf("-file %s: is a directory", local)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("-file %s: %w", local, err)
	}
	p := "/.shoal/files/" + hex.EncodeToString(h.Sum(nil))[:32] + "/" + filepath.Base(local)
	if _, err := cl.Stat(c.Context, p); err == nil {
		return p, nil // shipped before: same content
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	if _, err := cl.PutFile(c.Context, p, f, fi.Size(), peer.PutOptions{Force: true}); err != nil {
		return "", fmt.Errorf("-file %s: %w", local, err)
	}
	return p, nil
}

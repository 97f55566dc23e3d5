package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"shoal.dev/shoal/client"
	"slices"
	"strconv"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"shoal.dev/shoal/codec"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/job/streaming"
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
			&ucli.StringFlag{Name: "partitioner", Usage: "partitioner: hash (default, or HashPartitioner's class) or org.apache.hadoop.mapred.lib.KeyFieldBasedPartitioner (fields from -D mapreduce.partition.keypartitioner.options)"},
			&ucli.StringFlag{Name: "inputformat", Usage: "TextInputFormat (default), KeyValueTextInputFormat or CombineTextInputFormat (packs small files), by short or full class name"},
			&ucli.StringFlag{Name: "outputformat", Usage: "TextOutputFormat (default), by short or full class name"},
			&ucli.IntFlag{Name: "max-attempts", Value: scheduler.DefaultMaxAttempts, Usage: "attempts per task before the job fails"},
			&ucli.StringSliceFlag{Name: "D", Usage: "job property NAME=VALUE (repeatable): " + strings.Join(streamingPropertyNames(), ", ") + "; any other is refused"},
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
	props, err := parseStreamingProperties(c.StringSlice("D"))
	if err != nil {
		return usageError{err}
	}
	timeout := c.Duration("task-timeout")
	noSpec := [2]bool{c.Bool("no-speculation"), c.Bool("no-speculation")} // maps, reduces
	for kind, sp := range props.speculative {
		if sp == nil {
			continue
		}
		if *sp && c.Bool("no-speculation") {
			return usageError{fmt.Errorf("-D %s=true and --no-speculation disagree", speculativeName[kind])}
		}
		noSpec[kind] = !*sp
	}
	if props.timeout != nil {
		if c.IsSet("task-timeout") && *props.timeout != timeout {
			return usageError{fmt.Errorf("-D mapreduce.task.timeout and --task-timeout %s disagree", timeout)}
		}
		timeout = *props.timeout
	}
	reducers := c.Int("numReduceTasks")
	if props.reducers != nil {
		if c.IsSet("numReduceTasks") && *props.reducers != reducers {
			return usageError{fmt.Errorf("-D mapreduce.job.reduces=%d and -numReduceTasks %d disagree", *props.reducers, reducers)}
		}
		reducers = *props.reducers
	}
	if c.String("reducer") == "NONE" && reducers > 0 {
		return usageError{fmt.Errorf("-reducer NONE runs no reduce tasks, but %d are asked for", reducers)}
	}
	if c.String("reducer") != "NONE" && reducers == 0 && (c.IsSet("numReduceTasks") || props.reducers != nil) {
		return usageError{errors.New("0 reduce tasks: use -reducer NONE for a map-only job")}
	}
	for _, kv := range c.StringSlice("cmdenv") {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return usageError{fmt.Errorf("-cmdenv %q: want NAME=VALUE", kv)}
		}
	}
	if err := streamingClasses(c, props); err != nil {
		return usageError{err}
	}
	params := props.params
	params["mapper"] = c.String("mapper")
	for _, name := range []string{"combiner", "reducer"} {
		if v := c.String(name); v != "" {
			params[name] = v
		}
	}
	// Hadoop exports the job's properties to the commands' environment,
	// dots made underscores; -cmdenv comes after and wins.
	if env := append(props.env, c.StringSlice("cmdenv")...); len(env) > 0 {
		params["cmdenv"] = strings.Join(env, "\n")
	}
	// The parameters are checked here, before anything is shipped, so a
	// mistake is a usage error that leaves nothing behind.
	if files := c.StringSlice("file"); len(files) > 0 {
		params["files"] = strings.Join(files, "\n")
	}
	reg := job.NewRegistry()
	streaming.Register(reg)
	if _, err := reg.Resolve(streaming.Name, params); err != nil {
		return usageError{err}
	}
	cl, err := dial(c)
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
	if len(shipped) > 0 {
		params["files"] = strings.Join(shipped, "\n")
	}
	st, err := cl.Submit(c.Context, client.SubmitRequest{
		Name: "streaming", Params: params, Inputs: c.StringSlice("input"), Output: c.String("output"),
		Reducers: reducers, MaxAttempts: c.Int("max-attempts"),
		TaskTimeout: timeout.String(), OutputCompression: props.outputCodec, MaxSplitBytes: props.maxSplit,
		MapOutputCompression: props.mapCodec,
		NoSpeculativeMaps:    noSpec[0], NoSpeculativeReduces: noSpec[1],
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

// streamingProps is what a streaming command's -D properties ask for.
type streamingProps struct {
	params      map[string]string // the streaming job's parameters
	env         []string          // NAME=VALUE for the commands: every property, dots made underscores
	timeout     *time.Duration
	reducers    *int
	outputCodec string
	compress    *bool // mapreduce.output.fileoutputformat.compress
	maxSplit    int64
	comparator  bool   // KeyFieldBasedComparator named
	mapCompress *bool  // mapreduce.map.output.compress
	mapCodec    string // mapreduce.map.output.compress.codec, as a shuffle codec
	// speculative: mapreduce.map.speculative and
	// mapreduce.reduce.speculative, if given.
	speculative [2]*bool
}

// speculativeName names the properties of streamingProps.speculative.
var speculativeName = [2]string{"mapreduce.map.speculative", "mapreduce.reduce.speculative"}

// streamingProperty is one -D property Shoal knows: set applies its value.
type streamingProperty struct {
	name  string
	usage string
	set   func(p *streamingProps, v string) error
}

// streamingProperties are the -D properties Shoal takes, Hadoop's names
// and meanings. Any other name is refused rather than silently ignored.
var streamingProperties = []streamingProperty{
	{"mapreduce.task.timeout", "milliseconds without progress before a task attempt fails (0: never)", func(p *streamingProps, v string) error {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 || ms > int64(scheduler.MaxTaskTimeout/time.Millisecond) {
			return fmt.Errorf("want milliseconds, 0 (never) to %d", scheduler.MaxTaskTimeout/time.Millisecond)
		}
		d := time.Duration(ms) * time.Millisecond
		p.timeout = &d
		return nil
	}},
	{"mapreduce.map.speculative", "false: no backup attempts of the job's straggling maps", speculative(0)},
	{"mapreduce.reduce.speculative", "false: no backup attempts of the job's straggling reduces", speculative(1)},
	{"mapreduce.job.reduces", "reduce tasks (-numReduceTasks)", func(p *streamingProps, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errors.New("want a whole number, 0 or more")
		}
		p.reducers = &n
		return nil
	}},
	{"mapreduce.job.name", "the job's name (in the commands' environment as mapreduce_job_name)", func(*streamingProps, string) error { return nil }},
	{"stream.map.output.field.separator", "separator between key and value in the mapper's output (default tab)", param("map_output_separator")},
	{"stream.num.map.output.key.fields", "fields of a mapper's output line that make the key (default 1)", param("map_output_key_fields")},
	{"stream.reduce.output.field.separator", "the same for the reducer's output", param("reduce_output_separator")},
	{"stream.num.reduce.output.key.fields", "the same for the reducer's output", param("reduce_output_key_fields")},
	{"mapreduce.map.output.key.field.separator", "separator of a key's fields for the partitioner and comparator options (default tab)", param("key_field_separator")},
	{"map.output.key.field.separator", "the old name of mapreduce.map.output.key.field.separator", param("key_field_separator")},
	{"mapreduce.partition.keypartitioner.options", "KeyFieldBasedPartitioner's fields, as -k1,1", param("partitioner_options")},
	{"num.key.fields.for.partition", "KeyFieldBasedPartitioner's fields: N is -k1,N", func(p *streamingProps, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return errors.New("want a number of fields, 1 or more")
		}
		p.params["partitioner_options"] = fmt.Sprintf("-k1,%d", n)
		return nil
	}},
	{"mapreduce.partition.keycomparator.options", "key order, as -k1,1 -k2,2; only orders that equal Shoal's bytewise sort", param("comparator_options")},
	{"mapreduce.job.output.key.comparator.class", "org.apache.hadoop.mapreduce.lib.partition.KeyFieldBasedComparator (with the options above)", func(p *streamingProps, v string) error {
		switch v {
		case "org.apache.hadoop.mapreduce.lib.partition.KeyFieldBasedComparator", "org.apache.hadoop.mapred.lib.KeyFieldBasedComparator":
			p.comparator = true
			return nil
		}
		return errors.New("Shoal knows KeyFieldBasedComparator only (keys sort bytewise otherwise)")
	}},
	{"mapreduce.output.fileoutputformat.compress", "true compresses the output parts (gzip unless a codec is named)", func(p *streamingProps, v string) error {
		b, err := parseBool(v)
		p.compress = &b
		return err
	}},
	{"mapreduce.output.fileoutputformat.compress.codec", "GzipCodec or ZStandardCodec (class names), or gzip, zstd", func(p *streamingProps, v string) error {
		c, err := codec.Parse(v)
		p.outputCodec = string(c)
		return err
	}},
	{"mapreduce.map.output.compress", "true compresses map output on its way to the reducers (s2 unless a codec is named)", func(p *streamingProps, v string) error {
		b, err := parseBool(v)
		p.mapCompress = &b
		return err
	}},
	{"mapreduce.map.output.compress.codec", "SnappyCodec (S2 on the wire) or ZStandardCodec (class names), or s2, zstd", func(p *streamingProps, v string) error {
		switch shortClass(v) {
		case "SnappyCodec", "s2", "snappy":
			p.mapCodec = "s2"
		case "ZStandardCodec", "zstd":
			p.mapCodec = "zstd"
		default:
			return errors.New("Shoal compresses map output with SnappyCodec (as S2) or ZStandardCodec")
		}
		return nil
	}},
	{"mapreduce.input.fileinputformat.split.maxsize", "largest split packed from small files (bytes), with CombineTextInputFormat", func(p *streamingProps, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return errors.New("want a number of bytes, 1 or more")
		}
		p.maxSplit = n
		return nil
	}},
}

// speculative is a property that says whether maps (kind 0) or reduces
// (kind 1) may speculate: exactly true or false.
func speculative(kind int) func(p *streamingProps, v string) error {
	return func(p *streamingProps, v string) error {
		if v != "true" && v != "false" {
			return errors.New("want true or false")
		}
		b := v == "true"
		p.speculative[kind] = &b
		return nil
	}
}

// param is a property that sets a streaming job parameter as it is.
func param(name string) func(p *streamingProps, v string) error {
	return func(p *streamingProps, v string) error { p.params[name] = v; return nil }
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, errors.New("want true or false")
}

func streamingPropertyNames() []string {
	var out []string
	for _, p := range streamingProperties {
		out = append(out, p.name)
	}
	return out
}

// parseStreamingProperties parses a streaming command's -D NAME=VALUE
// list. An unknown name, a malformed pair or a bad value is an error
// naming it.
func parseStreamingProperties(kvs []string) (streamingProps, error) {
	p := streamingProps{params: map[string]string{}}
	seen := map[string]string{}
	for _, kv := range kvs {
		name, v, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return p, fmt.Errorf("-D %q: want NAME=VALUE", kv)
		}
		i := slices.IndexFunc(streamingProperties, func(sp streamingProperty) bool { return sp.name == name })
		if i < 0 {
			return p, fmt.Errorf("-D %s: unknown property; Shoal knows %s", name, strings.Join(streamingPropertyNames(), ", "))
		}
		if prev, ok := seen[name]; ok && prev != v {
			return p, fmt.Errorf("-D %s given twice, as %q and %q", name, prev, v)
		}
		seen[name] = v
		if err := streamingProperties[i].set(&p, v); err != nil {
			return p, fmt.Errorf("-D %s=%s: %w", name, v, err)
		}
		p.env = append(p.env, strings.ReplaceAll(name, ".", "_")+"="+v)
	}
	if p.compress != nil {
		switch {
		case !*p.compress:
			p.outputCodec = ""
		case p.outputCodec == "":
			p.outputCodec = string(codec.Gzip)
		}
	} else if p.outputCodec != "" {
		return p, errors.New("-D mapreduce.output.fileoutputformat.compress.codec needs -D mapreduce.output.fileoutputformat.compress=true")
	}
	switch {
	case p.mapCompress == nil && p.mapCodec != "":
		return p, errors.New("-D mapreduce.map.output.compress.codec needs -D mapreduce.map.output.compress=true")
	case p.mapCompress != nil && !*p.mapCompress:
		p.mapCodec = "none"
	case p.mapCompress != nil && p.mapCodec == "":
		p.mapCodec = "s2"
	}
	if p.params["comparator_options"] != "" && !p.comparator {
		return p, errors.New("-D mapreduce.partition.keycomparator.options needs -D mapreduce.job.output.key.comparator.class=org.apache.hadoop.mapreduce.lib.partition.KeyFieldBasedComparator")
	}
	return p, nil
}

// streamingClasses applies -partitioner, -inputformat and -outputformat,
// by Hadoop class name (or short name), to the job's parameters.
func streamingClasses(c *ucli.Context, p streamingProps) error {
	switch v := c.String("partitioner"); shortClass(v) {
	case "", "hash", "HashPartitioner":
		if p.params["partitioner_options"] != "" {
			return errors.New("-D mapreduce.partition.keypartitioner.options needs -partitioner org.apache.hadoop.mapred.lib.KeyFieldBasedPartitioner")
		}
	case "KeyFieldBasedPartitioner":
		p.params["partitioner"] = "keyfield"
		if p.params["partitioner_options"] == "" {
			p.params["partitioner_options"] = "-k1"
		}
	default:
		return fmt.Errorf("-partitioner %s: Shoal knows HashPartitioner (the default) and KeyFieldBasedPartitioner", v)
	}
	switch v := c.String("inputformat"); shortClass(v) {
	case "", "TextInputFormat":
	case "KeyValueTextInputFormat":
		p.params["input"] = "kv"
	case "CombineTextInputFormat":
		p.params["pack"] = "true"
	default:
		return fmt.Errorf("-inputformat %s: Shoal knows TextInputFormat (the default), KeyValueTextInputFormat and CombineTextInputFormat", v)
	}
	if p.maxSplit > 0 && p.params["pack"] != "true" {
		return errors.New("-D mapreduce.input.fileinputformat.split.maxsize packs small files only with -inputformat CombineTextInputFormat")
	}
	switch v := c.String("outputformat"); shortClass(v) {
	case "", "TextOutputFormat":
	default:
		return fmt.Errorf("-outputformat %s: Shoal knows TextOutputFormat (the default)", v)
	}
	return nil
}

// shortClass is a Hadoop class name without its package, if the package is
// one of Hadoop's (org.apache.hadoop.…); other names are returned as they
// are.
func shortClass(name string) string {
	if strings.HasPrefix(name, "org.apache.hadoop.") {
		return name[strings.LastIndexByte(name, '.')+1:]
	}
	return name
}

// shipFile stores a local file in the cluster under a name derived from its
// content, so every task can fetch exactly these bytes, and returns the
// cluster path.
func shipFile(c *ucli.Context, cl *client.Client, local string) (string, error) {
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
	if _, err := cl.Put(c.Context, p, f, fi.Size(), client.PutOptions{Force: true}); err != nil {
		return "", fmt.Errorf("-file %s: %w", local, err)
	}
	return p, nil
}

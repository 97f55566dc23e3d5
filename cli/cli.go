// Package cli is Shoal's command line: the agent and the client commands
// that talk to an agent's HTTP API. It is the only package that parses flags
// or exits.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"shoal.dev/shoal/job"
	"shoal.dev/shoal/job/builtin"
	"shoal.dev/shoal/job/streaming"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/secret"
	"shoal.dev/shoal/worker"
)

// usageError marks a mistake in the command line, which exits 2.
type usageError struct{ error }

// Run runs the shoal command line with the built-in jobs alone; it is
// Main(args).
func Run(args []string) int {
	return Main(args)
}

// Main runs the whole shoal command line, args[0] being the program's
// name, with jobs added to the built-in ones, and returns the process exit
// code: 0 on success, 1 on failure, 2 on a usage mistake. Errors are
// printed as one line on stderr. A Go program that brings its own jobs is
// three lines:
//
//	func main() { os.Exit(cli.Main(os.Args, myJob)) }
//
// `prog job run NAME --input … --output …` (and --local) then runs any of
// them as `shoal job run` runs a built-in job; `prog agent` runs a node
// that has them built in. A job whose name is a built-in one's, or given
// twice, or invalid (see job.Registry.Register), is a usage mistake.
//
// Run with worker.EnvVar in its environment (an agent starting a worker of
// a shipped program), it serves the worker protocol instead.
func Main(args []string, jobs ...job.Spec) int {
	if os.Getenv(worker.EnvVar) != "" {
		reg, err := newRegistry(jobs)
		if err != nil {
			fmt.Fprintf(os.Stderr, "shoal worker: %v\n", err)
			return 2
		}
		return worker.Serve(reg)
	}
	return runApp(context.Background(), args, os.Stdout, os.Stderr, true, jobs...)
}

// metaReexec in App.Metadata allows the agent to re-execute itself to drop
// the secret from its command line and environment: true in a real
// process (Run), never in tests that run the app in-process.
const metaReexec = "reexec"

func run(ctx context.Context, args []string, stdout, stderr io.Writer, jobs ...job.Spec) int {
	return runApp(ctx, args, stdout, stderr, false, jobs...)
}

func runApp(ctx context.Context, args []string, stdout, stderr io.Writer, reexec bool, jobs ...job.Spec) int {
	err := runJobs(ctx, args, stdout, stderr, reexec, jobs)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "shoal: %s\n", oneLine(err))
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// runJobs builds the app for the given extra jobs and runs it.
func runJobs(ctx context.Context, args []string, stdout, stderr io.Writer, reexec bool, jobs []job.Spec) error {
	if _, err := newRegistry(jobs); err != nil {
		return usageError{err}
	}
	app := newApp(stdout, stderr, jobs)
	app.Metadata = map[string]any{metaReexec: reexec, metaLocalNote: false, metaJobs: jobs}
	return app.RunContext(ctx, permuteArgs(app, args))
}

// metaJobs in App.Metadata holds the []job.Spec given to Main.
const metaJobs = "jobs"

// newRegistry is the one list of the jobs this program knows, for its
// client commands and --local runs: the built-in jobs, Hadoop Streaming
// (default configuration), and jobs. An agent builds its own from the
// same parts (peer.Config.Jobs), with the streaming job configured for it.
func newRegistry(jobs []job.Spec) (*job.Registry, error) {
	r := job.NewRegistry()
	builtin.Register(r)
	streaming.Register(r)
	for _, s := range jobs {
		if err := r.Register(s); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// registry is newRegistry for the jobs the app was started with.
func registry(c *ucli.Context) (*job.Registry, error) {
	jobs, _ := c.App.Metadata[metaJobs].([]job.Spec)
	return newRegistry(jobs)
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func newApp(stdout, stderr io.Writer, jobs []job.Spec) *ucli.App {
	app := &ucli.App{
		Name:                 "shoal",
		Usage:                "a masterless MapReduce engine and block store",
		Version:              peer.Version,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: false,
		HideVersion:          true,
		// Values such as -cmdenv A=x,y keep their commas; --input splits
		// its own.
		DisableSliceFlagSeparator: true,
		Flags:                     appFlags(),
		OnUsageError:              onUsageError,
		CommandNotFound: func(c *ucli.Context, name string) {
			// Reported through the returned error in Before; see below.
		},
		Commands: []*ucli.Command{
			agentCommand(),
			membersCommand(),
			drainCommand(),
			uiCommand(),
			ringCommand(),
			p2pCommand(),
			fsCommand(),
			jobCommand(jobs),
			streamingCommand(),
			genCommand(),
			keygenCommand(),
			tokenCommand(),
			versionCommand(),
		},
		ExitErrHandler: func(*ucli.Context, error) {}, // we print and exit in Run
	}
	app.Action = func(c *ucli.Context) error {
		if c.Bool("version") {
			printVersion(c)
			return nil
		}
		return ucli.ShowAppHelp(c)
	}
	app.Before = func(c *ucli.Context) error {
		if c.Args().Present() {
			name := c.Args().First()
			if app.Command(name) == nil {
				return usageError{fmt.Errorf("unknown command %q (run `shoal help` for the list)", name)}
			}
		}
		return nil
	}
	setUsageErrors(app.Commands)
	return app
}

func onUsageError(_ *ucli.Context, err error, _ bool) error {
	return usageError{err}
}

func setUsageErrors(cmds []*ucli.Command) {
	for _, c := range cmds {
		c.OnUsageError = onUsageError
		setUsageErrors(c.Subcommands)
	}
}

// exactArgs checks the number of positional arguments.
func exactArgs(c *ucli.Context, n int, usage string) error {
	if c.NArg() != n {
		return usageError{fmt.Errorf("usage: %s %s", commandPath(c), usage)}
	}
	return nil
}

// commandPath is "shoal fs put" for the context of `fs put`.
func commandPath(c *ucli.Context) string {
	var names []string
	for _, l := range c.Lineage() {
		if l.Command != nil && l.Command.Name != "" {
			names = append([]string{l.Command.Name}, names...)
		}
	}
	// The lineage of a subcommand includes the app's own root command,
	// named "shoal"; a context without it still gets the prefix once.
	if len(names) == 0 || names[0] != "shoal" {
		names = append([]string{"shoal"}, names...)
	}
	return strings.Join(names, " ")
}

// permuteArgs lets flags follow positional arguments, as in
// `shoal fs put LOCAL PATH --force`: urfave/cli stops parsing flags at the
// first positional argument, so the leaf command's flags (and their values)
// are moved in front of its positional arguments. "--" ends the flags.
func permuteArgs(app *ucli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	flags, cmds := app.Flags, app.Commands
	i := 1
	for i < len(args) {
		a := args[i]
		if strings.HasPrefix(a, "-") && a != "-" && a != "--" {
			out = append(out, a)
			i++
			if takesValue(flags, a) && i < len(args) {
				out = append(out, args[i])
				i++
			}
			continue
		}
		var next *ucli.Command
		for _, c := range cmds {
			if c.HasName(a) {
				next = c
			}
		}
		if next == nil {
			break
		}
		out = append(out, a)
		i++
		flags, cmds = next.Flags, next.Subcommands
	}
	var front, positional []string
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && a != "-":
			front = append(front, a)
			if takesValue(flags, a) && i+1 < len(args) {
				front = append(front, args[i+1])
				i++
			}
		default:
			positional = append(positional, a)
		}
	}
	out = append(out, front...)
	if len(positional) > 0 {
		out = append(out, "--")
		out = append(out, positional...)
	}
	return out
}

// takesValue reports whether arg ("-x", "--name", "--name=v") is a flag of
// flags that takes a separate value.
func takesValue(flags []ucli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*ucli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}

func keygenCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "keygen",
		Usage: "print a new random cluster secret",
		Action: func(c *ucli.Context) error {
			if err := exactArgs(c, 0, ""); err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, secret.Generate())
			return nil
		},
	}
}

func versionCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "version",
		Usage: "print the version",
		Action: func(c *ucli.Context) error {
			printVersion(c)
			return nil
		},
	}
}

func printVersion(c *ucli.Context) {
	fmt.Fprintf(c.App.Writer, "shoal %s (%s, %s/%s)\n", peer.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

package cli

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
	ucli "github.com/urfave/cli/v2"
)

// The agent's configuration file (--config FILE) is TOML whose keys are the
// agent's flag names, at the top level: `join = ["a.example:7946"]`,
// `join-timeout = "1m"`, `fast-gossip = true`. The keys are derived from
// the flag definitions of agentCommand, so every flag has one.
//
// Precedence, highest first: a flag typed on the command line, then the
// environment (SHOAL_SECRET_FILE and SHOAL_SECRET, the only variables the
// agent reads), then the file, then the flag's default. A key that a typed
// flag or the environment overrides is named in one log line, never
// dropped silently.

// maxConfigFile bounds the configuration file read.
const maxConfigFile = 1 << 20

// metaConfig in App.Metadata holds the *agentFile applied to the agent's
// flags, if any.
const metaConfig = "agent-config"

// agentFile is a configuration file applied to the agent's flags.
type agentFile struct {
	path string
	// applied holds the line of each key that set its flag.
	applied map[string]int
	// notes are the keys that a typed flag or the environment overrode,
	// to be logged once the logger exists.
	notes []string
}

// flagOrigin names where a flag's value came from, for errors:
// `name (FILE line N)` when the configuration file set it, else "--name".
func flagOrigin(c *ucli.Context, name string) string {
	if f, _ := c.App.Metadata[metaConfig].(*agentFile); f != nil {
		if l, ok := f.applied[name]; ok {
			return fmt.Sprintf("%s (%s line %d)", name, f.path, l)
		}
	}
	return "--" + name
}

// configKeys are the keys a configuration file may hold: the names of the
// agent's flags, but for --config itself.
func configKeys(flags []ucli.Flag) map[string]ucli.Flag {
	keys := map[string]ucli.Flag{}
	for _, f := range flags {
		name := f.Names()[0]
		if name != "config" {
			keys[name] = f
		}
	}
	return keys
}

// configError is a mistake in the configuration file; it exits 2.
func configError(path string, line int, format string, args ...any) error {
	return usageError{fmt.Errorf("%s line %d: %s", path, line, fmt.Sprintf(format, args...))}
}

// applyAgentConfig reads --config, if given, and sets every flag it names
// that was not typed and that the environment does not override.
func applyAgentConfig(c *ucli.Context) error {
	path := c.String("config")
	if path == "" {
		return nil
	}
	data, err := readConfigFile(path)
	if err != nil {
		return usageError{err}
	}
	var values map[string]any
	if err := toml.Unmarshal(data, &values); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, _ := de.Position()
			return configError(path, row, "%s", strings.TrimPrefix(de.Error(), "toml: "))
		}
		return usageError{fmt.Errorf("%s: %w", path, err)}
	}
	keys := configKeys(c.Command.Flags)
	f := &agentFile{path: path, applied: map[string]int{}}
	var p unstable.Parser
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			line := p.Shape(e.Raw).Start.Line
			if k := e.Key(); k.Next() {
				line = p.Shape(k.Node().Raw).Start.Line
			}
			return configError(path, line, "tables are not used: write every key at the top level")
		case unstable.KeyValue:
		default:
			continue
		}
		var parts []string
		line := 0
		for k := e.Key(); k.Next(); {
			if line == 0 {
				line = p.Shape(k.Node().Raw).Start.Line
			}
			parts = append(parts, string(k.Node().Data))
		}
		name := strings.Join(parts, ".")
		fl, ok := keys[name]
		if !ok {
			return configError(path, line, "unknown key %q: the keys are the agent's flag names (see shoal agent --help)", name)
		}
		v, err := configValue(fl, values[name])
		if err != nil {
			return configError(path, line, "%s: %v", name, err)
		}
		if over := overriddenBy(c, name); over != "" {
			f.notes = append(f.notes, fmt.Sprintf("%s (%s line %d) is overridden by %s", name, path, line, over))
			continue
		}
		for _, s := range v {
			if err := c.Set(name, s); err != nil {
				return configError(path, line, "%s: %v", name, err)
			}
		}
		f.applied[name] = line
	}
	if err := p.Error(); err != nil {
		return usageError{fmt.Errorf("%s: %w", path, err)}
	}
	c.App.Metadata[metaConfig] = f
	return nil
}

// overriddenBy names what overrides a key of the file: a typed flag, or
// the environment for the secret; "" when the file's value stands.
func overriddenBy(c *ucli.Context, name string) string {
	if c.IsSet(name) {
		return "--" + name
	}
	if name == "secret-file" {
		if typedGlobal(c, name) != "" {
			return "--secret-file"
		}
		for _, env := range []string{"SHOAL_SECRET_FILE", "SHOAL_SECRET"} {
			if os.Getenv(env) != "" {
				return env
			}
		}
	}
	return ""
}

func readConfigFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("--config %s: not a regular file", path)
	}
	if fi.Size() > maxConfigFile {
		return nil, fmt.Errorf("--config %s: %d bytes, more than the %d a configuration file may hold", path, fi.Size(), maxConfigFile)
	}
	data := make([]byte, fi.Size())
	if _, err := fh.ReadAt(data, 0); err != nil && fi.Size() > 0 {
		return nil, fmt.Errorf("--config: %w", err)
	}
	return data, nil
}

// configValue turns a TOML value into the strings that set fl: one for a
// scalar flag, one per element for a repeatable one. It checks the value's
// type and, for durations, addresses and levels, its shape.
func configValue(fl ucli.Flag, v any) ([]string, error) {
	name := fl.Names()[0]
	var out []string
	switch fl.(type) {
	case *ucli.BoolFlag:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("want true or false, got %s", tomlType(v))
		}
		out = []string{strconv.FormatBool(b)}
	case *ucli.IntFlag:
		i, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("want an integer, got %s", tomlType(v))
		}
		out = []string{strconv.FormatInt(i, 10)}
	case *ucli.DurationFlag:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a duration in quotes, e.g. \"30s\", got %s", tomlType(v))
		}
		if _, err := time.ParseDuration(s); err != nil {
			return nil, fmt.Errorf("%q is not a duration (e.g. \"30s\", \"1m30s\")", s)
		}
		out = []string{s}
	case *ucli.StringFlag:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a string in quotes, got %s", tomlType(v))
		}
		out = []string{s}
	case *ucli.StringSliceFlag:
		switch x := v.(type) {
		case string:
			out = []string{x}
		case []any:
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("want an array of strings, got an element that is %s", tomlType(e))
				}
				out = append(out, s)
			}
			if len(out) == 0 {
				return nil, errors.New("an empty array sets nothing: leave the key out")
			}
		default:
			return nil, fmt.Errorf("want an array of strings, got %s", tomlType(v))
		}
	default:
		return nil, fmt.Errorf("flag of type %T cannot be set from a file", fl)
	}
	for _, s := range out {
		if err := checkShape(name, s); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkShape checks the values whose form is known before the agent
// starts, so that a bad one is reported at its line.
func checkShape(name, s string) error {
	switch name {
	case "bind", "advertise", "http", "join":
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" && name == "join" {
			return fmt.Errorf("%q: want HOST:PORT", s)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return fmt.Errorf("%q: bad port %q", s, port)
		}
	case "log-level":
		if !slices.Contains([]string{"debug", "info", "warn", "error"}, strings.ToLower(s)) {
			return fmt.Errorf("%q: want debug, info, warn or error", s)
		}
	case "p2p":
		if !strings.HasPrefix(s, "/") {
			return fmt.Errorf("%q: want a multiaddr such as /ip4/0.0.0.0/tcp/7000", s)
		}
	case "p2p-direct":
		if !strings.HasPrefix(s, "/") && s != "off" {
			return fmt.Errorf("%q: want a multiaddr such as /ip4/0.0.0.0/tcp/7001, or off", s)
		}
	}
	return nil
}

// tomlType names a decoded TOML value's type for an error.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case nil:
		return "nothing"
	default:
		return "a date or time"
	}
}

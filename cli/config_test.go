package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/disk"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/secret"
)

// configSample is, for every agent flag, a TOML value other than its
// default, and what the flag then reads back as. A flag added without a
// sample here fails TestConfigEveryFlagHasAKey.
var configSample = map[string]struct{ toml, want, with string }{
	"name":                  {toml: `"n1"`, want: "n1"},
	"bind":                  {toml: `"127.0.0.1:17946"`, want: "127.0.0.1:17946"},
	"advertise":             {toml: `"127.0.0.2:17946"`, want: "127.0.0.2:17946"},
	"join":                  {toml: `["seed.example:7946", "127.0.0.1:7000"]`, want: "[seed.example:7946 127.0.0.1:7000]"},
	"join-timeout":          {toml: `"1m"`, want: "1m0s"},
	"retry-join":            {toml: `true`, want: "true", with: `join = ["seed.example:7946"]`},
	"p2p":                   {toml: `["/ip4/127.0.0.1/tcp/7000"]`, want: "[/ip4/127.0.0.1/tcp/7000]"},
	"p2p-direct":            {toml: `["/ip4/127.0.0.1/tcp/7001"]`, want: "[/ip4/127.0.0.1/tcp/7001]"},
	"http":                  {toml: `"127.0.0.1:17470"`, want: "127.0.0.1:17470"},
	"data-dir":              {toml: `"/var/lib/shoal"`, want: "/var/lib/shoal"},
	"secret-file":           {toml: `"SECRET"`, want: "SECRET"},
	"log-level":             {toml: `"debug"`, want: "debug"},
	"insecure":              {toml: `true`, want: "true"},
	"tls-cert":              {toml: `"/etc/shoal/cert.pem"`, want: "/etc/shoal/cert.pem"},
	"tls-key":               {toml: `"/etc/shoal/key.pem"`, want: "/etc/shoal/key.pem"},
	"max-conns":             {toml: `64`, want: "64"},
	"task-user":             {toml: `"nobody"`, want: "nobody"},
	"max-clock-drift":       {toml: `"2m"`, want: "2m0s"},
	"tombstone-ttl":         {toml: `"48h"`, want: "48h0m0s"},
	"anti-entropy-interval": {toml: `"5s"`, want: "5s"},
	"recover-meta":          {toml: `true`, want: "true"},
	"fast-gossip":           {toml: `true`, want: "true"},
	"reconnect-interval":    {toml: `"10s"`, want: "10s"},
	"reconnect-timeout":     {toml: `"1h"`, want: "1h0m0s"},
	"job-history":           {toml: `50`, want: "50"},
	"job-history-age":       {toml: `"72h"`, want: "72h0m0s"},
	"no-speculation":        {toml: `true`, want: "true"},
	"reserve":               {toml: `"10GiB"`, want: "10GiB"},
	"scrub-rate":            {toml: `"32MiB"`, want: "32MiB"},
}

// agentOutcome is what an agent command line with a configuration file
// resolves to, without starting a node.
type agentOutcome struct {
	cfg    peer.Config
	values map[string]string // every flag's value as read back
	secret string            // the secret file the agent would read
	notes  []string
	err    error
}

// resolveAgent runs the agent command line args (after "shoal") through
// the real flag parsing and configuration file, but stops before a node
// starts.
func resolveAgent(t *testing.T, args ...string) agentOutcome {
	t.Helper()
	var out agentOutcome
	cmd := agentCommand()
	cmd.Action = func(c *ucli.Context) error {
		if err := applyAgentConfig(c); err != nil {
			return err
		}
		out.values = map[string]string{}
		for _, f := range c.Command.Flags {
			n := f.Names()[0]
			if _, ok := f.(*ucli.StringSliceFlag); ok {
				out.values[n] = fmt.Sprint(c.StringSlice(n))
			} else {
				out.values[n] = fmt.Sprint(c.Value(n))
			}
		}
		out.secret = globalString(c, "secret-file")
		if f, _ := c.App.Metadata[metaConfig].(*agentFile); f != nil {
			out.notes = f.notes
		}
		var err error
		out.cfg, err = agentConfig(c)
		return err
	}
	app := newApp(&bytes.Buffer{}, &bytes.Buffer{}, nil)
	app.Metadata = map[string]any{}
	for i, c := range app.Commands {
		if c.Name == "agent" {
			app.Commands[i] = cmd
		}
	}
	setUsageErrors(app.Commands)
	out.err = app.RunContext(context.Background(), permuteArgs(app, append([]string{"shoal"}, args...)))
	return out
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "shoal.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigEveryFlagHasAKey sets each agent flag from a file alone and
// checks that the flag reads back the file's value and, for the flags
// that configure the node, that the node's configuration changes.
func TestConfigEveryFlagHasAKey(t *testing.T) {
	t.Setenv("SHOAL_SECRET_FILE", "")
	t.Setenv("SHOAL_SECRET", "")
	base := resolveAgent(t, "agent", "--config", writeConfig(t, "# nothing\n"))
	if base.err != nil {
		t.Fatal(base.err)
	}
	keys := configKeys(agentCommand().Flags)
	for name := range keys {
		s, ok := configSample[name]
		if !ok {
			t.Errorf("agent flag --%s has no sample value in configSample: add one, so that its key is tested", name)
			continue
		}
		base := base
		if s.with != "" {
			if base = resolveAgent(t, "agent", "--config", writeConfig(t, s.with+"\n")); base.err != nil {
				t.Fatal(base.err)
			}
		}
		got := resolveAgent(t, "agent", "--config", writeConfig(t, s.with+"\n"+name+" = "+s.toml+"\n"))
		if got.err != nil {
			t.Errorf("%s = %s: %v", name, s.toml, got.err)
			continue
		}
		if got.values[name] != s.want {
			t.Errorf("%s = %s: the flag reads %q, want %q", name, s.toml, got.values[name], s.want)
		}
		switch name {
		case "secret-file":
			if got.secret != s.want {
				t.Errorf("secret-file = %s: the agent would read %q", s.toml, got.secret)
			}
		case "log-level":
			// Read by runAgent, not part of peer.Config.
		default:
			if reflect.DeepEqual(got.cfg, base.cfg) {
				t.Errorf("%s = %s changes nothing in the node's configuration", name, s.toml)
			}
		}
	}
	for name := range configSample {
		if _, ok := keys[name]; !ok {
			t.Errorf("configSample has %q, which is no agent flag", name)
		}
	}
	if _, ok := keys["config"]; ok {
		t.Error("config is a key of the configuration file")
	}
}

// TestConfigPrecedence: typed flag > environment > file > default.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	secretFile := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(secret.Generate().String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fileSecret, envSecret, typedSecret := secretFile("file"), secretFile("env"), secretFile("typed")
	conf := writeConfig(t, fmt.Sprintf("name = \"fromfile\"\nmax-conns = 7\nsecret-file = %q\njoin = [\"a.example:7946\"]\n", fileSecret))

	t.Setenv("SHOAL_SECRET_FILE", "")
	t.Setenv("SHOAL_SECRET", "")
	got := resolveAgent(t, "agent", "--config", conf)
	if got.err != nil || got.cfg.Name != "fromfile" || got.cfg.MaxConns != 7 || got.secret != fileSecret || len(got.notes) != 0 {
		t.Fatalf("file alone: %+v", got)
	}
	if want := []string{"a.example:7946"}; !reflect.DeepEqual(got.cfg.Join, want) {
		t.Errorf("join = %q, want %q", got.cfg.Join, want)
	}

	// Typed flags win, after the command or before it, and are noted.
	got = resolveAgent(t, "agent", "--config", conf, "--name", "typed", "--join", "b.example:7946")
	if got.err != nil || got.cfg.Name != "typed" || got.cfg.MaxConns != 7 || !reflect.DeepEqual(got.cfg.Join, []string{"b.example:7946"}) {
		t.Fatalf("typed --name and --join: %+v", got)
	}
	if !hasNote(got.notes, "name (", "is overridden by --name") || !hasNote(got.notes, "join (", "is overridden by --join") {
		t.Errorf("notes %q: want the overridden keys named", got.notes)
	}

	// The environment beats the file, and says so.
	t.Setenv("SHOAL_SECRET_FILE", envSecret)
	got = resolveAgent(t, "agent", "--config", conf)
	if got.err != nil || got.secret != envSecret || !hasNote(got.notes, "secret-file (", "is overridden by SHOAL_SECRET_FILE") {
		t.Fatalf("SHOAL_SECRET_FILE and the file: %+v", got)
	}
	t.Setenv("SHOAL_SECRET_FILE", "")
	t.Setenv("SHOAL_SECRET", secret.Generate().String())
	got = resolveAgent(t, "agent", "--config", conf)
	if got.err != nil || got.secret != "" || !hasNote(got.notes, "secret-file (", "is overridden by SHOAL_SECRET") {
		t.Fatalf("SHOAL_SECRET and the file: %+v", got)
	}

	// A typed flag beats the environment and the file.
	t.Setenv("SHOAL_SECRET_FILE", envSecret)
	for _, args := range [][]string{
		{"agent", "--config", conf, "--secret-file", typedSecret},
		{"--secret-file", typedSecret, "agent", "--config", conf},
	} {
		got = resolveAgent(t, args...)
		if got.err != nil || got.secret != typedSecret {
			t.Fatalf("%q: secret file %q, err %v; want %q", args, got.secret, got.err, typedSecret)
		}
	}
}

func hasNote(notes []string, prefix, suffix string) bool {
	for _, n := range notes {
		if strings.HasPrefix(n, prefix) && strings.HasSuffix(n, suffix) {
			return true
		}
	}
	return false
}

// TestConfigRejects runs the real agent command on bad files: each fails
// with exit code 2 and one line that names the file and the line.
func TestConfigRejects(t *testing.T) {
	t.Setenv("SHOAL_SECRET_FILE", "")
	t.Setenv("SHOAL_SECRET", "")
	cases := []struct{ text, want string }{
		{"name = \"a\"\nbogus = 1\n", `line 2: unknown key "bogus"`},
		{"\n\nname.first = \"a\"\n", `line 3: unknown key "name.first"`},
		{"name = \"a\"\n[agent]\nbind = \"x:1\"\n", "line 2: tables are not used"},
		{"max-conns = \"many\"\n", "line 1: max-conns: want an integer, got a string"},
		{"# c\nmax-conns = 0\n", "max-conns (FILE line 2) must be at least 1, got 0"},
		{"join-timeout = \"3 parsecs\"\n", `line 1: join-timeout: "3 parsecs" is not a duration`},
		{"join-timeout = 30\n", "line 1: join-timeout: want a duration in quotes"},
		{"fast-gossip = \"yes\"\n", "line 1: fast-gossip: want true or false, got a string"},
		{"join = [\"a:1\", 2]\n", "line 1: join: want an array of strings"},
		{"join = [\"nohost\"]\n", `line 1: join: "nohost": want HOST:PORT`},
		{"bind = \"127.0.0.1:99999\"\n", `line 1: bind: "127.0.0.1:99999": bad port "99999"`},
		{"\nlog-level = \"loud\"\n", `line 2: log-level: "loud": want debug, info, warn or error`},
		{"p2p = [\"tcp:7000\"]\n", `line 1: p2p: "tcp:7000": want a multiaddr`},
		{"p2p-direct = [\"on\"]\n", `line 1: p2p-direct: "on": want a multiaddr such as /ip4/0.0.0.0/tcp/7001, or off`},
		{"tombstone-ttl = \"10ms\"\n", "tombstone-ttl (FILE line 1) 10ms: want at least 1s"},
		{"reserve = \"12 parsecs\"\n", `reserve (FILE line 1) "12 parsecs": unknown unit "parsecs"`},
		{"scrub-rate = \"fast\"\n", `scrub-rate (FILE line 1) "fast": want bytes per second such as 8MiB, or 0 for off`},
		{"scrub-rate = \"-1MiB\"\n", `scrub-rate (FILE line 1) "-1MiB": want bytes per second such as 8MiB, or 0 for off`},
		{"name = \"a\"\nname = \"b\"\n", "line 2:"},
		{"name = \n", "line 1:"},
		{"config = \"other.toml\"\n", `line 1: unknown key "config"`},
	}
	for _, tc := range cases {
		p := writeConfig(t, tc.text)
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"shoal", "agent", "--config", p}, &stdout, &stderr)
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		last := lines[len(lines)-1]
		want := "shoal: " + p + " " + strings.ReplaceAll(tc.want, "FILE", p)
		if strings.Contains(tc.want, "FILE") {
			want = strings.ReplaceAll(tc.want, "FILE", p)
		}
		if code != 2 || !strings.Contains(last, want) || !strings.HasPrefix(last, "shoal: ") {
			t.Errorf("file %q: exit %d, last line %q; want exit 2 and %q", tc.text, code, last, want)
		}
	}
	var stderr bytes.Buffer
	missing := filepath.Join(t.TempDir(), "none.toml")
	if code := run(context.Background(), []string{"shoal", "agent", "--config", missing}, &bytes.Buffer{}, &stderr); code != 2 || !strings.Contains(stderr.String(), missing) {
		t.Errorf("missing file: exit %d, %q", code, stderr.String())
	}
}

// TestDeployConfig: the example configuration of deploy/ is accepted and
// puts the data where the systemd unit's StateDirectory is.
func TestDeployConfig(t *testing.T) {
	t.Setenv("SHOAL_SECRET_FILE", "")
	t.Setenv("SHOAL_SECRET", "")
	got := resolveAgent(t, "agent", "--config", filepath.Join("..", "deploy", "shoal.toml"))
	if got.err != nil {
		t.Fatal(got.err)
	}
	if got.cfg.DataDir != "/var/lib/shoal" || !got.cfg.RetryJoin || len(got.cfg.Join) == 0 || got.secret != "/etc/shoal/secret" ||
		got.cfg.Reserve == nil || got.cfg.Reserve.Percent != 5 || len(got.cfg.P2PDirectAddrs) != 1 {
		t.Errorf("deploy/shoal.toml: %+v, secret %q", got.cfg, got.secret)
	}
}

// TestScrubRateFlag: --scrub-rate's forms reach the node's configuration:
// a rate, 0 for off, and the default the help shows, which is the
// scrub's own.
func TestScrubRateFlag(t *testing.T) {
	t.Setenv("SHOAL_SECRET_FILE", "")
	t.Setenv("SHOAL_SECRET", "")
	for _, tc := range []struct {
		args []string
		rate int64
		off  bool
	}{
		{args: []string{"agent"}, rate: 0}, // the node's default
		{args: []string{"agent", "--scrub-rate", "16MiB"}, rate: 16 << 20},
		{args: []string{"agent", "--scrub-rate=512KiB"}, rate: 512 << 10},
		{args: []string{"agent", "--scrub-rate", "0"}, off: true},
	} {
		out := resolveAgent(t, tc.args...)
		if out.err != nil {
			t.Fatalf("%q: %v", tc.args, out.err)
		}
		if out.cfg.ScrubRate != tc.rate || out.cfg.NoScrub != tc.off {
			t.Errorf("%q: rate %d, off %v; want %d, %v", tc.args, out.cfg.ScrubRate, out.cfg.NoScrub, tc.rate, tc.off)
		}
	}
	for _, f := range agentCommand().Flags {
		if sf, ok := f.(*ucli.StringFlag); ok && sf.Name == "scrub-rate" {
			if n, err := disk.ParseSize(sf.Value); err != nil || n != blockstore.DefaultScrubRate {
				t.Errorf("--scrub-rate shows default %q (%d, %v), the scrub's is %d", sf.Value, n, err, blockstore.DefaultScrubRate)
			}
		}
	}
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"shoal", "agent", "--scrub-rate", "fast"}, &bytes.Buffer{}, &stderr); code != 2 || !strings.Contains(stderr.String(), `--scrub-rate "fast": want bytes per second such as 8MiB, or 0 for off`) {
		t.Errorf("--scrub-rate fast: exit %d, %q", code, stderr.String())
	}
}

package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"

	"shoal.dev/shoal/disk"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/scheduler"
)

// AgentMemoryLimit is the Go runtime's soft memory limit (see
// debug.SetMemoryLimit) an agent sets unless GOMEMLIMIT is set. On a
// 2-core node the default buffers (2 slots × a 128 MiB sort buffer, 64
// MiB of fetched map output) stay under it, and the garbage collector then
// runs before garbage, which it otherwise lets grow as big as the live
// heap, takes the node past 512 MiB.
const AgentMemoryLimit = 448 << 20

func agentCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "agent",
		Usage: "run a node; start more with --join to form a cluster",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "config", Usage: "TOML file of agent settings: its keys are these flags' names (join = [\"seed.example:7946\"], fast-gossip = true); typed flags, then SHOAL_SECRET_FILE and SHOAL_SECRET, override it"},
			&ucli.StringFlag{Name: "name", Usage: "unique node name (default: host name and gossip port)"},
			&ucli.StringFlag{Name: "bind", Value: peer.DefaultGossipAddr, Usage: "gossip (memberlist) address HOST:PORT; port 0 picks one"},
			&ucli.StringFlag{Name: "advertise", Usage: "gossip address other nodes reach this one at, if not --bind"},
			&ucli.StringSliceFlag{Name: "join", Usage: "gossip address HOST:PORT of a member to join (repeatable); a DNS name joins every address it resolves to, looked up again on each retry"},
			&ucli.DurationFlag{Name: "join-timeout", Value: peer.DefaultJoinTimeout, Usage: "how long to retry --join before giving up (not with --retry-join)"},
			&ucli.BoolFlag{Name: "retry-join", Usage: "start at once, alone if no --join member answers yet, and keep trying --join in the background until one does"},
			&ucli.StringSliceFlag{Name: "p2p", Value: ucli.NewStringSlice(peer.DefaultP2PAddr), Usage: "data-plane (libp2p) listen multiaddr (repeatable)"},
			&ucli.StringSliceFlag{Name: "p2p-direct", Usage: "direct data-plane listen multiaddr (repeatable): members' block and shuffle streams over TLS 1.3 without the private network's second encryption (default: each --p2p IP on a free port; \"off\": none, everything over --p2p)"},
			&ucli.StringFlag{Name: "http", Value: peer.DefaultHTTPAddr, Usage: "HTTP API address HOST:PORT; port 0 picks one"},
			&ucli.StringFlag{Name: "data-dir", Usage: "where the node keeps its identity, metadata and blocks (default ~/.local/share/shoal/NAME)"},
			&ucli.StringFlag{Name: "secret-file", Usage: "file holding the cluster secret (default: the global --secret-file, $SHOAL_SECRET_FILE; or set SHOAL_SECRET); make one with `shoal keygen`"},
			&ucli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&ucli.BoolFlag{Name: "insecure", Usage: "allow non-loopback addresses without a cluster secret, and the HTTP API beyond loopback without TLS"},
			&ucli.StringFlag{Name: "tls-cert", Usage: "PEM certificate of the HTTP API (with --tls-key): clients then use https://"},
			&ucli.StringFlag{Name: "tls-key", Usage: "PEM private key of --tls-cert"},
			&ucli.StringFlag{Name: "reserve", Value: "1GiB, at most 5%", Usage: "free space to keep on the data dir's file systems: a size (512MiB, 2GiB) or a percentage of the disk (5%); below it the node takes no new blocks or tasks, and a write that would cross it is refused; 0 keeps none"},
			&ucli.StringFlag{Name: "scrub-rate", Value: "8MiB", Usage: "bytes per second the background scrub reads to check every stored block against its SHA-256 ID, so bit rot on a copy no one reads is found and repaired; 0 turns it off"},
			&ucli.IntFlag{Name: "max-conns", Value: peer.DefaultMaxConns, Usage: "cap on the HTTP API's open connections; idle ones are closed first"},
			&ucli.StringFlag{Name: "task-user", Usage: "run the commands of jobs (Hadoop Streaming) as this user, in its primary group (the agent must run as root)"},
			&ucli.DurationFlag{Name: "max-clock-drift", Value: peer.DefaultClockDrift, Usage: "reject metadata written by a clock more than this far ahead of ours"},
			&ucli.DurationFlag{Name: "tombstone-ttl", Value: peer.DefaultTombstoneTTL, Usage: "how long deletions are remembered; a node away longer re-syncs under the tombstone rule"},
			&ucli.DurationFlag{Name: "anti-entropy-interval", Value: peer.DefaultAntiEntropy, Usage: "time between metadata anti-entropy rounds with a random member (1s with --fast-gossip unless set)"},
			&ucli.BoolFlag{Name: "recover-meta", Usage: "if meta.db is empty, corrupt or missing, move it aside, start empty and re-sync the metadata from the other members before serving"},
			&ucli.BoolFlag{Name: "fast-gossip", Usage: "fast failure detection for one-machine clusters and tests"},
			&ucli.DurationFlag{Name: "reconnect-interval", Value: peer.DefaultReconnect, Usage: "how often to try to join one member that failed (so split halves find each other again)"},
			&ucli.DurationFlag{Name: "reconnect-timeout", Value: peer.DefaultReconnectTimeout, Usage: "how long to keep trying a failed member before forgetting it"},
			&ucli.IntFlag{Name: "job-history", Value: scheduler.DefaultJobHistory, Usage: "how many ended jobs the cluster remembers; older ones are forgotten"},
			&ucli.BoolFlag{Name: "no-speculation", Usage: "start no backup attempts of straggling tasks on this node"},
			&ucli.DurationFlag{Name: "job-history-age", Usage: "also forget jobs that ended longer ago than this (0: no age limit)"},
		},
		Action: runAgent,
	}
}

func runAgent(c *ucli.Context) error {
	if c.NArg() > 0 {
		return usageError{fmt.Errorf("agent takes no arguments, got %q", c.Args().First())}
	}
	if err := applyAgentConfig(c); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return usageError{fmt.Errorf("%s %q: want debug, info, warn or error", flagOrigin(c, "log-level"), c.String("log-level"))}
	}
	log := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
	if f, _ := c.App.Metadata[metaConfig].(*agentFile); f != nil {
		for _, n := range f.notes {
			log.Info("config: " + n)
		}
	}

	sec, passed, err := secretFromFD()
	if err != nil {
		return err
	}
	if !passed {
		if f := globalString(c, "secret-file"); f != "" {
			if err := checkSecretFileMode(f); err != nil {
				return err
			}
		}
		if sec, err = loadSecret(c); err != nil {
			return err
		}
		if !sec.IsZero() && c.App.Metadata[metaReexec] == true {
			return execWithoutSecret(sec)
		}
	}
	if os.Geteuid() == 0 {
		if c.String("task-user") == "" {
			log.Warn("running as root, and so do the commands of every job (Hadoop Streaming): whoever holds the cluster secret has root on this machine; run the agent as an unprivileged user, or pass --task-user")
		} else {
			log.Warn("running as root; job commands run as " + c.String("task-user"))
		}
	}
	cfg, err := agentConfig(c)
	if err != nil {
		return err
	}
	cfg.Secret = sec
	cfg.Logger = log
	cfg.Jobs, _ = c.App.Metadata[metaJobs].([]job.Spec)
	if sec.IsZero() {
		log.Warn("no cluster secret: gossip, data and API are open to anyone who can reach this node; set --secret-file or SHOAL_SECRET")
	}

	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(AgentMemoryLimit)
	}

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	node, err := peer.New(cfg)
	if err != nil {
		return err
	}
	if err := node.Start(ctx); err != nil {
		node.Close()
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted while joining")
		}
		return err
	}
	select {
	case <-ctx.Done():
	case <-node.Drained():
		log.Info("drained", "node", node.Name())
	}
	log.Info("leaving the cluster", "node", node.Name())
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := node.Shutdown(sctx); err != nil && !strings.Contains(err.Error(), "closed") {
		log.Warn("shutdown", "err", err)
	}
	log.Info("stopped", "node", node.Name())
	return nil
}

// agentConfig is the node's configuration from the agent's flags (typed
// or set by --config), but for the secret and the logger. A bad value is
// a usage error that names the flag, or the file and line that set it.
func agentConfig(c *ucli.Context) (peer.Config, error) {
	cfg := peer.DefaultConfig()
	cfg.Name = c.String("name")
	cfg.GossipAddr = c.String("bind")
	cfg.AdvertiseAddr = c.String("advertise")
	cfg.Join = c.StringSlice("join")
	cfg.JoinTimeout = c.Duration("join-timeout")
	cfg.RetryJoin = c.Bool("retry-join")
	if cfg.RetryJoin && len(cfg.Join) == 0 {
		return cfg, usageError{fmt.Errorf("%s needs --join: the addresses to keep trying", flagOrigin(c, "retry-join"))}
	}
	cfg.P2PAddrs = c.StringSlice("p2p")
	cfg.P2PDirectAddrs = c.StringSlice("p2p-direct")
	cfg.HTTPAddr = c.String("http")
	cfg.DataDir = c.String("data-dir")
	cfg.Insecure = c.Bool("insecure")
	cfg.TaskUser = c.String("task-user")
	cfg.Speculation.Off = c.Bool("no-speculation")
	cfg.TLSCert, cfg.TLSKey = c.String("tls-cert"), c.String("tls-key")
	if c.Int("max-conns") < 1 {
		return cfg, usageError{fmt.Errorf("%s must be at least 1, got %d", flagOrigin(c, "max-conns"), c.Int("max-conns"))}
	}
	cfg.MaxConns = c.Int("max-conns")
	if c.IsSet("reserve") {
		r, err := disk.ParseReserve(c.String("reserve"))
		if err != nil {
			return cfg, usageError{fmt.Errorf("%s %w", flagOrigin(c, "reserve"), err)}
		}
		cfg.Reserve = &r
	}
	if c.IsSet("scrub-rate") {
		rate, err := disk.ParseSize(c.String("scrub-rate"))
		if err != nil {
			return cfg, usageError{fmt.Errorf("%s %q: want bytes per second such as 8MiB, or 0 for off", flagOrigin(c, "scrub-rate"), c.String("scrub-rate"))}
		}
		cfg.ScrubRate, cfg.NoScrub = rate, rate == 0
	}
	cfg.FastGossip = c.Bool("fast-gossip")
	for _, f := range []string{"reconnect-interval", "reconnect-timeout"} {
		if c.Duration(f) <= 0 {
			return cfg, usageError{fmt.Errorf("%s %v: want a positive duration, e.g. 30s", flagOrigin(c, f), c.Duration(f))}
		}
	}
	cfg.ReconnectInterval = c.Duration("reconnect-interval")
	cfg.ReconnectTimeout = c.Duration("reconnect-timeout")
	if c.Int("job-history") < 1 {
		return cfg, usageError{fmt.Errorf("%s must be at least 1, got %d", flagOrigin(c, "job-history"), c.Int("job-history"))}
	}
	if c.Duration("job-history-age") < 0 {
		return cfg, usageError{fmt.Errorf("%s must not be negative, got %v", flagOrigin(c, "job-history-age"), c.Duration("job-history-age"))}
	}
	cfg.JobHistory, cfg.JobHistoryAge = c.Int("job-history"), c.Duration("job-history-age")
	cfg.MaxClockDrift = c.Duration("max-clock-drift")
	if cfg.MaxClockDrift <= 0 {
		return cfg, usageError{fmt.Errorf("%s %v: want a positive duration", flagOrigin(c, "max-clock-drift"), cfg.MaxClockDrift)}
	}
	cfg.TombstoneTTL = c.Duration("tombstone-ttl")
	if cfg.TombstoneTTL < time.Second {
		return cfg, usageError{fmt.Errorf("%s %v: want at least 1s", flagOrigin(c, "tombstone-ttl"), cfg.TombstoneTTL)}
	}
	if c.IsSet("anti-entropy-interval") || !cfg.FastGossip {
		cfg.AntiEntropyInterval = c.Duration("anti-entropy-interval")
		if cfg.AntiEntropyInterval < 10*time.Millisecond {
			return cfg, usageError{fmt.Errorf("%s %v: want at least 10ms", flagOrigin(c, "anti-entropy-interval"), cfg.AntiEntropyInterval)}
		}
	}
	cfg.RecoverMeta = c.Bool("recover-meta")
	return cfg, nil
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"shoal.dev/shoal/client"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"shoal.dev/shoal/disk"
)

func membersCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "members",
		Usage: "list the cluster's members as the agent at --addr sees them",
		Flags: append(clientFlags(),
			&ucli.IntFlag{Name: "wait", Usage: "first wait until this many members are alive"},
			&ucli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "how long --wait waits"},
		),
		Action: func(c *ucli.Context) error {
			if err := exactArgs(c, 0, ""); err != nil {
				return err
			}
			if c.Int("wait") < 0 {
				return usageError{fmt.Errorf("--wait must not be negative")}
			}
			cl, err := dial(c)
			if err != nil {
				return err
			}
			ms, err := waitMembers(c.Context, cl, c.Int("wait"), c.Duration("timeout"))
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tGOSSIP\tSTATE\tPEER ID\tHTTP\tVERSION\tDISK FREE\tUNHEALTHY")
			for _, m := range ms {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Gossip, m.State, orDash(m.PeerID), orDash(m.HTTP), orDash(m.Version), diskColumn(m), orDash(unhealthyText(m)))
			}
			return tw.Flush()
		},
	}
}

// waitMembers polls the member list until at least want members are alive.
func waitMembers(ctx context.Context, cl *client.Client, want int, timeout time.Duration) ([]client.Member, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var (
		lastAlive int
		answered  bool
		lastErr   error
	)
	for {
		ms, err := cl.Members(ctx)
		alive := 0
		for _, m := range ms {
			if m.State == "alive" {
				alive++
			}
		}
		if err == nil && alive >= want {
			return ms, nil
		}
		var apiErr *client.Error
		if errors.As(err, &apiErr) || (want == 0 && err != nil) {
			return nil, err // the agent answered no: waiting will not help
		}
		if err == nil {
			lastAlive, answered = alive, true
		} else if ctx.Err() == nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if !answered && lastErr != nil {
				return nil, fmt.Errorf("waited %s for %d alive members, but no agent answered: %w", timeout, want, lastErr)
			}
			return nil, fmt.Errorf("waited %s for %d alive members: only %d of %d are alive (as %s sees them)", timeout, want, lastAlive, want, cl.Addr())
		case <-tick.C:
		}
	}
}

func ringCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "ring",
		Usage: "inspect the consistent-hash ring",
		Subcommands: []*ucli.Command{{
			Name:      "owners",
			Usage:     "print the members that own KEY, primary first",
			ArgsUsage: "KEY",
			Flags:     append(clientFlags(), &ucli.IntFlag{Name: "n", Value: 3, Usage: "how many owners"}),
			Action: func(c *ucli.Context) error {
				if err := exactArgs(c, 1, "KEY"); err != nil {
					return err
				}
				if n := c.Int("n"); n < 1 {
					return usageError{fmt.Errorf("-n must be at least 1, got %d", n)}
				}
				cl, err := dial(c)
				if err != nil {
					return err
				}
				o, err := cl.Owners(c.Context, c.Args().First(), c.Int("n"))
				if err != nil {
					return err
				}
				for _, name := range o.Owners {
					fmt.Fprintln(c.App.Writer, name)
				}
				return nil
			},
		}},
	}
}

func p2pCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "p2p",
		Usage: "inspect the data plane",
		Subcommands: []*ucli.Command{{
			Name:      "ping",
			Usage:     "ping NODE over the data plane from the agent at --addr",
			ArgsUsage: "NODE",
			Flags:     clientFlags(),
			Action: func(c *ucli.Context) error {
				if err := exactArgs(c, 1, "NODE"); err != nil {
					return err
				}
				cl, err := dial(c)
				if err != nil {
					return err
				}
				p, err := cl.Ping(c.Context, c.Args().First())
				if err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "pong from %s (%s) to %s: rtt %.3f ms\n", p.Node, p.PeerID, p.From, p.RTTMs)
				return nil
			},
		}},
	}
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

// unhealthyText is why a member takes no tasks, for the UNHEALTHY column:
// its data dir's trouble, wire formats this node cannot speak, or that it
// is being drained.
func unhealthyText(m client.Member) string {
	why := strings.Join(strings.Fields(m.Unhealthy), " ")
	if m.Incompatible != "" {
		why = strings.TrimPrefix(why+"; "+m.Incompatible, "; ")
	}
	if m.Draining {
		why = strings.TrimPrefix(why+"; draining", "; ")
	}
	return why
}

// diskColumn shows a member's free space, and LOW with its reserve when
// it takes no new blocks or tasks; "-" before it has said.
func diskColumn(m client.Member) string {
	switch {
	case m.LowDisk:
		return fmt.Sprintf("LOW %s (reserve %s)", disk.Size(m.DiskFree), disk.Size(m.DiskReserve))
	case m.DiskFree == 0 && m.DiskReserve == 0:
		return "-"
	}
	return disk.Size(m.DiskFree)
}

package cli

import (
	"errors"
	"fmt"
	"shoal.dev/shoal/client"
	"time"

	ucli "github.com/urfave/cli/v2"
)

// drainPoll is how often `shoal drain` asks for the drain's progress.
const drainPoll = 500 * time.Millisecond

func drainCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "drain",
		Usage:     "hand every block of the agent at --addr to the other members, then make it leave the cluster",
		ArgsUsage: " ",
		Flags: append(clientFlags(),
			&ucli.BoolFlag{Name: "force", Usage: "drain even when a file asks for more copies than the members that would remain"},
			&ucli.DurationFlag{Name: "timeout", Usage: "stop waiting after this long (0: until done); the drain goes on"},
		),
		Action: runDrain,
	}
}

func runDrain(c *ucli.Context) error {
	if err := exactArgs(c, 0, "[--force] [--timeout D]"); err != nil {
		return err
	}
	if c.Duration("timeout") < 0 {
		return usageError{fmt.Errorf("--timeout %v: must not be negative", c.Duration("timeout"))}
	}
	cl, err := dial(c)
	if err != nil {
		return err
	}
	ctx := c.Context
	info, err := cl.Drain(ctx, c.Bool("force"))
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "draining %s: its blocks go to the other members; it takes no new blocks and no tasks\n", info.Node)
	var deadline <-chan time.Time
	if d := c.Duration("timeout"); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	last := -2
	for {
		if info.Done {
			fmt.Fprintf(c.App.Writer, "%s drained: every block it held is on other members; it is leaving the cluster\n", info.Node)
			return nil
		}
		if info.BlocksLeft != last && info.BlocksLeft >= 0 {
			fmt.Fprintf(c.App.Writer, "%s: %d copies to hand over\n", info.Node, info.BlocksLeft)
			last = info.BlocksLeft
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted; the drain of %s goes on", info.Node)
		case <-deadline:
			return fmt.Errorf("%s is still draining after --timeout %v (%s); the drain goes on: run shoal drain again to follow it", info.Node, c.Duration("timeout"), left(info))
		case <-tick.C:
		}
		next, err := cl.DrainStatus(ctx)
		if errors.Is(err, client.ErrUnreachable) {
			return fmt.Errorf("%s stopped answering during its drain (%s): if it was stopped, its blocks are repaired from the other copies; start it and run shoal drain again", info.Node, left(info))
		}
		if err != nil {
			return err
		}
		info = next
	}
}

func left(info client.DrainInfo) string {
	if info.BlocksLeft < 0 {
		return "copies not counted yet"
	}
	return fmt.Sprintf("%d copies left to hand over", info.BlocksLeft)
}

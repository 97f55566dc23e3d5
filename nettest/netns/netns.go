// Package netns builds small networks of Linux network namespaces for
// process-level tests of partitions: each host is a namespace with one
// interface, eth0, whose other end is a port of a bridge ("switch") in a
// namespace of its own. Moving host ports between the switch's bridges
// splits and heals the network without touching the host's addresses or
// the processes running in it.
//
// Everything a Lab creates lives in namespaces it creates, whose names end
// with the test process's ID, so parallel runs never collide: nothing is
// added to the caller's namespace. Hosts get addresses 198.18.0.1,
// 198.18.0.2 … /24 (198.18.0.0/15 is reserved for benchmarks, RFC 2544).
// A Lab is torn down by Close, which New registers with the test's
// Cleanup, so it goes also when the test fails; New first removes what
// runs of processes that no longer exist left behind (a test binary killed
// on timeout runs no cleanup).
//
// It needs root and iproute2's ip; New skips the test, saying why, when
// either is missing.
package netns

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// namePrefix starts the name of every namespace a Lab creates.
const namePrefix = "shoaltest-"

// MaxHosts bounds a Lab's hosts (one /24, addresses .1 up).
const MaxHosts = 250

// Config describes a Lab. Zero fields take the documented default.
type Config struct {
	// Hosts is the number of hosts, 1 to MaxHosts.
	Hosts int
	// Switches is the number of bridges hosts can be moved between; the
	// most parts a Partition may have. Default 2.
	Switches int
}

// Lab is a set of hosts on one switch with several bridges. Its methods
// are safe for concurrent use.
type Lab struct {
	tb    testing.TB
	id    string // unique suffix: the process ID
	sw    string // switch namespace
	hosts []*Host
	nsw   int

	mu     sync.Mutex
	closed bool
}

// Host is one namespace of a Lab.
type Host struct {
	lab  *Lab
	idx  int    // 0-based
	ns   string // namespace name
	port string // its port on the switch
	ip   string
}

// Available reports why Labs cannot be built here, or nil if they can.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("iproute2's ip is not installed")
	}
	return nil
}

// New builds a Lab of cfg.Hosts hosts, all on bridge 0, or skips the test
// when Available says no. It fails the test if the network cannot be built.
func New(tb testing.TB, cfg Config) *Lab {
	tb.Helper()
	if err := Available(); err != nil {
		tb.Skipf("skipping the network-namespace test: %v", err)
	}
	if cfg.Hosts < 1 || cfg.Hosts > MaxHosts {
		tb.Fatalf("netns: %d hosts; want 1 to %d", cfg.Hosts, MaxHosts)
	}
	if cfg.Switches == 0 {
		cfg.Switches = 2
	}
	removeStale()
	id := strconv.Itoa(os.Getpid())
	l := &Lab{tb: tb, id: id, sw: namePrefix + "sw-" + id, nsw: cfg.Switches}
	tb.Cleanup(l.Close)
	if err := l.build(cfg.Hosts); err != nil {
		tb.Fatalf("netns: %v", err)
	}
	return l
}

// build creates the switch and the hosts.
func (l *Lab) build(n int) error {
	if err := ip("netns", "add", l.sw); err != nil {
		return err
	}
	if err := ip("-n", l.sw, "link", "set", "lo", "up"); err != nil {
		return err
	}
	for b := range l.nsw {
		br := bridgeName(b)
		if err := ip("-n", l.sw, "link", "add", br, "type", "bridge"); err != nil {
			return err
		}
		if err := ip("-n", l.sw, "link", "set", br, "up"); err != nil {
			return err
		}
	}
	for i := range n {
		h := &Host{lab: l, idx: i, ns: fmt.Sprintf("%sh%d-%s", namePrefix, i+1, l.id), port: fmt.Sprintf("h%d", i+1), ip: fmt.Sprintf("198.18.0.%d", i+1)}
		l.hosts = append(l.hosts, h)
		steps := [][]string{
			{"netns", "add", h.ns},
			{"-n", h.ns, "link", "set", "lo", "up"},
			{"link", "add", "eth0", "netns", h.ns, "type", "veth", "peer", "name", h.port, "netns", l.sw},
			{"-n", h.ns, "addr", "add", h.ip + "/24", "dev", "eth0"},
			{"-n", h.ns, "link", "set", "eth0", "up"},
			{"-n", l.sw, "link", "set", h.port, "master", bridgeName(0)},
			{"-n", l.sw, "link", "set", h.port, "up"},
		}
		for _, s := range steps {
			if err := ip(s...); err != nil {
				return err
			}
		}
	}
	return nil
}

func bridgeName(i int) string { return "br" + strconv.Itoa(i) }

// Hosts returns the Lab's hosts, in order.
func (l *Lab) Hosts() []*Host { return l.hosts }

// Host returns host i, 0-based.
func (l *Lab) Host(i int) *Host { return l.hosts[i] }

// Partition puts the hosts of parts[k] on bridge k, so that hosts in
// different parts cannot reach each other; hosts in no part stay where
// they are. It fails the test on an error.
func (l *Lab) Partition(parts ...[]int) {
	l.tb.Helper()
	if len(parts) > l.nsw {
		l.tb.Fatalf("netns: %d parts but only %d switches", len(parts), l.nsw)
	}
	for k, part := range parts {
		for _, i := range part {
			if err := l.hosts[i].moveTo(k); err != nil {
				l.tb.Fatalf("netns: %v", err)
			}
		}
	}
}

// Heal puts every host back on bridge 0.
func (l *Lab) Heal() {
	l.tb.Helper()
	for _, h := range l.hosts {
		if err := h.moveTo(0); err != nil {
			l.tb.Fatalf("netns: %v", err)
		}
	}
}

// Close deletes the hosts and the switch. Processes still running in a
// host keep its network alive until they exit, so stop them first. Safe to
// call more than once; New registers it with the test's Cleanup.
func (l *Lab) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	for _, h := range l.hosts {
		if err := ip("netns", "del", h.ns); err != nil {
			l.tb.Errorf("netns: %v", err)
		}
		if err := os.RemoveAll(filepath.Join(etcNetns, h.ns)); err != nil {
			l.tb.Errorf("netns: %v", err)
		}
	}
	if err := ip("netns", "del", l.sw); err != nil && !strings.Contains(err.Error(), "No such file") {
		l.tb.Errorf("netns: %v", err)
	}
}

// Name is the host's name, "h1", "h2" …
func (h *Host) Name() string { return h.port }

// IP is the host's address on eth0.
func (h *Host) IP() string { return h.ip }

// Namespace is the name of the host's network namespace.
func (h *Host) Namespace() string { return h.ns }

// Command returns a command that runs name with args inside the host's
// namespace (through ip netns exec, which execs it: the process's PID is
// the command's).
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.ns, name}, args...)...)
}

// SlowLink makes the host's link slow until FastLink: tc netem delays
// every packet it sends by delay; on a kernel without netem, a token
// bucket (tbf) holds its eth0 to 1 Mbit/s with up to delay of queueing.
// Calling it again replaces the first. It needs iproute2's tc
// (TCAvailable).
func (h *Host) SlowLink(delay time.Duration) error {
	us := strconv.FormatInt(delay.Microseconds(), 10) + "us"
	err := run("ip", "netns", "exec", h.ns, "tc", "qdisc", "replace", "dev", "eth0", "root", "netem", "delay", us)
	if err != nil && strings.Contains(err.Error(), "qdisc kind is unknown") {
		err = run("ip", "netns", "exec", h.ns, "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", "1mbit", "burst", "32kbit", "latency", us)
	}
	return err
}

// FastLink removes a SlowLink delay; without one it does nothing.
func (h *Host) FastLink() error {
	err := run("ip", "netns", "exec", h.ns, "tc", "qdisc", "del", "dev", "eth0", "root")
	if err != nil && (strings.Contains(err.Error(), "No such file") || strings.Contains(err.Error(), "Cannot delete qdisc with handle of zero")) {
		return nil
	}
	return err
}

// Qdisc returns what tc shows of the host's eth0 queueing discipline.
func (h *Host) Qdisc() (string, error) {
	out, err := exec.Command("ip", "netns", "exec", h.ns, "tc", "qdisc", "show", "dev", "eth0").Output()
	return string(out), err
}

// TCAvailable reports why SlowLink cannot work here, or nil if it can.
func TCAvailable() error {
	if _, err := exec.LookPath("tc"); err != nil {
		return errors.New("iproute2's tc is not installed")
	}
	return nil
}

// SetHosts makes text the host's /etc/hosts: ip netns exec, through which
// Command runs, mounts /etc/netns/NAMESPACE/hosts over /etc/hosts. Close
// removes the file.
func (h *Host) SetHosts(text string) error {
	dir := filepath.Join(etcNetns, h.ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "hosts"), []byte(text), 0o644)
}

// etcNetns holds the per-namespace files ip netns exec mounts over /etc.
const etcNetns = "/etc/netns"

// moveTo attaches the host's switch port to bridge k.
func (h *Host) moveTo(k int) error {
	return ip("-n", h.lab.sw, "link", "set", h.port, "master", bridgeName(k))
}

// ip runs the ip command and returns its error with its stderr.
func ip(args ...string) error { return run("ip", args...) }

// run runs a command and returns its error with its stderr.
func run(name string, args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// removeStale deletes the namespaces of Labs whose process is gone.
func removeStale() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], namePrefix) {
			continue
		}
		name := f[0]
		pid, err := strconv.Atoi(name[strings.LastIndexByte(name, '-')+1:])
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		_ = ip("netns", "del", name)
	}
	dirs, _ := filepath.Glob(filepath.Join(etcNetns, namePrefix+"*"))
	for _, d := range dirs {
		name := filepath.Base(d)
		pid, err := strconv.Atoi(name[strings.LastIndexByte(name, '-')+1:])
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		_ = os.RemoveAll(d)
	}
}

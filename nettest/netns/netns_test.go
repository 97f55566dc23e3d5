package netns

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary double as a tiny TCP server or client run
// inside a host (the helper-process pattern): NETNS_HELPER=listen:ADDR
// answers "pong" to every connection; NETNS_HELPER=dial:ADDR prints what
// ADDR answers.
func TestMain(m *testing.M) {
	if mode, addr, ok := strings.Cut(os.Getenv("NETNS_HELPER"), ":"); ok {
		os.Exit(helper(mode, addr))
	}
	os.Exit(m.Run())
}

func helper(mode, addr string) int {
	switch mode {
	case "listen":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("listening")
		for {
			c, err := ln.Accept()
			if err != nil {
				return 1
			}
			fmt.Fprintln(c, "pong")
			c.Close()
		}
	case "dial":
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Print(line)
		return 0
	}
	return 2
}

// reaches reports whether a connection from h to addr gets an answer
// within a second.
func reaches(t *testing.T, h *Host, addr string) bool {
	t.Helper()
	cmd := h.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "NETNS_HELPER=dial:"+addr)
	out, err := cmd.Output()
	return err == nil && strings.TrimSpace(string(out)) == "pong"
}

func TestPartitionAndHeal(t *testing.T) {
	lab := New(t, Config{Hosts: 3})
	var servers []*exec.Cmd
	t.Cleanup(func() {
		for _, s := range servers {
			s.Process.Kill()
			s.Wait()
		}
	})
	for _, h := range lab.Hosts() {
		cmd := h.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "NETNS_HELPER=listen:"+h.IP()+":7000")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		servers = append(servers, cmd)
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "listening\n" {
			t.Fatalf("%s: server did not start: %q %v", h.Name(), line, err)
		}
	}
	h1, h2, h3 := lab.Host(0), lab.Host(1), lab.Host(2)
	if h1.IP() != "198.18.0.1" || h3.Name() != "h3" || !strings.HasSuffix(h2.Namespace(), fmt.Sprint(os.Getpid())) {
		t.Fatalf("names: %s %s %s", h1.IP(), h3.Name(), h2.Namespace())
	}
	all := func(want bool) {
		t.Helper()
		for _, a := range lab.Hosts() {
			for _, b := range lab.Hosts() {
				if got := reaches(t, a, b.IP()+":7000"); got != want {
					t.Fatalf("%s reaches %s: %v, want %v", a.Name(), b.Name(), got, want)
				}
			}
		}
	}
	all(true)
	if reaches(t, h1, "127.0.0.1:7000") {
		t.Fatal("a host's loopback is not its own")
	}

	lab.Partition([]int{0}, []int{1, 2})
	if reaches(t, h1, h2.IP()+":7000") || reaches(t, h3, h1.IP()+":7000") {
		t.Fatal("the partition does not cut h1 off")
	}
	if !reaches(t, h2, h3.IP()+":7000") || !reaches(t, h1, h1.IP()+":7000") {
		t.Fatal("the partition cuts within a part")
	}
	lab.Heal()
	all(true)

	lab.Close()
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, h := range lab.Hosts() {
		if strings.Contains(string(out), h.Namespace()) {
			t.Fatalf("%s left behind", h.Namespace())
		}
	}
	if strings.Contains(string(out), lab.sw) {
		t.Fatalf("%s left behind", lab.sw)
	}
}

// TestSlowLink: SlowLink installs a netem delay on the host's eth0 (or,
// on a kernel without netem, a 1 Mbit/s token bucket with that latency),
// as tc shows it; a second call replaces it, FastLink removes it, and a
// second FastLink is harmless.
func TestSlowLink(t *testing.T) {
	if err := TCAvailable(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	lab := New(t, Config{Hosts: 1})
	h := lab.Host(0)
	for _, d := range []string{"200ms", "50ms"} {
		delay, _ := time.ParseDuration(d)
		if err := h.SlowLink(delay); err != nil {
			t.Fatal(err)
		}
		q, err := h.Qdisc()
		netem := strings.Contains(q, "netem") && strings.Contains(q, "delay "+d)
		tbf := strings.Contains(q, "tbf") && strings.Contains(q, "lat "+d)
		if err != nil || !netem && !tbf {
			t.Fatalf("after SlowLink(%s): %q %v", d, q, err)
		}
	}
	for range 2 {
		if err := h.FastLink(); err != nil {
			t.Fatal(err)
		}
	}
	if q, err := h.Qdisc(); err != nil || strings.Contains(q, "netem") || strings.Contains(q, "tbf") {
		t.Fatalf("after FastLink: %q %v", q, err)
	}
}

package peer_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"shoal.dev/shoal/client"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/job/streaming"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/scheduler"
)

// rawRequest sends req with the default transport and returns status and body.
func rawRequest(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBrowserChecks: an open (loopback, no secret) node refuses a foreign
// Host (DNS rebinding) and a cross-origin browser POST, text/plain
// included, and still serves its own clients.
func TestBrowserChecks(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{NoSecret: true})
	n := c.Node(0)
	put(t, n, "/in", []byte("a b\n"), blockstore.MinBlockSize)

	req, _ := http.NewRequest("GET", n.HTTPURL()+"/v1/members", nil)
	req.Host = "rebind.attacker.example:7470"
	if code, body := rawRequest(t, req); code != http.StatusForbidden || !strings.Contains(body, "Host") {
		t.Errorf("foreign Host: %d %s", code, body)
	}
	body := `{"name":"wordcount","inputs":["/in"],"output":"/out"}`
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/json"} {
		req, _ = http.NewRequest("POST", n.HTTPURL()+"/v1/jobs", strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Origin", "http://attacker.example")
		if code, b := rawRequest(t, req); code != http.StatusForbidden || !strings.Contains(b, "Origin") {
			t.Errorf("cross-origin %s POST: %d %s", ct, code, b)
		}
	}
	if _, err := n.FS().Stat("/out/_SUCCESS"); err == nil {
		t.Fatal("a cross-origin POST ran a job")
	}
	if len(n.Scheduler().List()) != 0 {
		t.Fatalf("a cross-origin POST submitted a job: %+v", n.Scheduler().List())
	}
	// Its own clients: an IP literal, localhost, the same origin.
	for _, host := range []string{"", "localhost", "[::1]:1"} {
		req, _ = http.NewRequest("GET", n.HTTPURL()+"/v1/members", nil)
		if host != "" {
			req.Host = host
		}
		if code, b := rawRequest(t, req); code != http.StatusOK {
			t.Errorf("Host %q: %d %s", host, code, b)
		}
	}
	req, _ = http.NewRequest("GET", n.HTTPURL()+"/v1/health", nil)
	req.Header.Set("Origin", n.HTTPURL())
	if code, b := rawRequest(t, req); code != http.StatusOK {
		t.Errorf("same origin: %d %s", code, b)
	}
}

// TestRunsCommandsNeedsSecret: the secret check follows what a job can do,
// not its name: Hadoop Streaming registered under another name is refused
// on an open cluster too.
func TestRunsCommandsNeedsSecret(t *testing.T) {
	reg := job.NewRegistry()
	spec, err := streaming.NewSpec(streaming.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	spec.Name = "pipeline"
	reg.Register(spec)
	c := clustertest.Start(t, 1, clustertest.Options{NoSecret: true, Registry: reg})
	put(t, c.Node(0), "/in", []byte("x\n"), blockstore.MinBlockSize)
	_, err = c.Node(0).Submit(context.Background(), scheduler.SubmitRequest{
		Name: "pipeline", Params: map[string]string{"mapper": "touch /tmp/pwned-by-shoal-test", "reducer": "cat"}, Inputs: []string{"/in"}, Output: "/out",
	})
	if !errors.Is(err, scheduler.ErrBadRequest) || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("a command-running job under another name on an open cluster: %v", err)
	}
}

// fdCount is the number of open descriptors of this process.
func fdCount(t *testing.T) int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(es)
}

// TestIdleConnectionsCapped: a thousand idle connections to the API do not
// pile up descriptors in the node, and the node goes on answering its
// clients and gossiping.
func TestIdleConnectionsCapped(t *testing.T) {
	const max, idle = 32, 1000
	c := clustertest.Start(t, 2, clustertest.Options{Configure: func(i int, cfg *peer.Config) { cfg.MaxConns = max }})
	n := c.Node(0)
	addr := strings.TrimPrefix(n.HTTPURL(), "http://")
	base := fdCount(t)
	var conns []net.Conn
	defer func() {
		for _, cn := range conns {
			cn.Close()
		}
	}()
	for range idle {
		cn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, cn)
	}
	// The client side holds idle descriptors; the node at most max of
	// its own (plus a little slack for gossip and data plane).
	clustertest.Eventually(t, 5*time.Second, func() error {
		if got := fdCount(t) - base; got > idle+max+20 {
			return errors.New("node holds " + itoa(got-idle) + " descriptors for idle connections")
		}
		return nil
	})
	cl, _ := client.New(n.HTTPURL(), c.Config(0).Secret.APIToken())
	ms, err := cl.Members(context.Background())
	if err != nil || len(ms) != 2 {
		t.Fatalf("members with %d idle connections open: %v %v", idle, ms, err)
	}
	for _, m := range ms {
		if m.State != "alive" {
			t.Fatalf("%s is %s", m.Name, m.State)
		}
	}
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

// TestStalledUploadTimesOut: a put whose body stops coming is cut after the
// read timeout, while a slow put that keeps making progress, longer in
// total than the timeout, succeeds.
func TestStalledUploadTimesOut(t *testing.T) {
	const rt = 400 * time.Millisecond
	c := clustertest.Start(t, 1, clustertest.Options{Configure: func(i int, cfg *peer.Config) { cfg.APIReadTimeout = rt }})
	n := c.Node(0)
	token := c.Config(0).Secret.APIToken()

	// Slow but steady: a line every rt/4, for 3×rt.
	pr, pw := io.Pipe()
	go func() {
		for i := range 12 {
			pw.Write([]byte("line " + itoa(i) + "\n"))
			time.Sleep(rt / 4) // the client being slow, not a wait
		}
		pw.Close()
	}()
	cl, _ := client.New(n.HTTPURL(), token)
	if _, err := cl.Put(context.Background(), "/slow", pr, -1, client.PutOptions{}); err != nil {
		t.Fatalf("a slow put that keeps making progress: %v", err)
	}

	// Stalled: headers and a few bytes, then nothing.
	cn, err := net.Dial("tcp", strings.TrimPrefix(n.HTTPURL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	io.WriteString(cn, "PUT /v1/fs/file?path=/stalled HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "+token+"\r\nContent-Length: 1000\r\n\r\nabc")
	cn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(cn) // the node answers and closes
	if err != nil {
		t.Fatalf("the node held a stalled upload open for 10 s (read timeout %s): %v", rt, err)
	}
	if bytes.Contains(b, []byte(" 200 ")) {
		t.Fatalf("a stalled put succeeded: %q", b)
	}
	if _, err := n.FS().Stat("/stalled"); err == nil {
		t.Fatal("a stalled put left a file")
	}
}

// TestTLS: an agent with --tls-cert/--tls-key serves https only; a client
// that trusts its CA talks to it, one that does not is refused.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pool := selfSigned(t, certFile, keyFile)
	c := clustertest.Start(t, 1, clustertest.Options{Configure: func(i int, cfg *peer.Config) {
		cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	}})
	n := c.Node(0)
	if !strings.HasPrefix(n.HTTPURL(), "https://") {
		t.Fatalf("HTTPURL %s", n.HTTPURL())
	}
	token := c.Config(0).Secret.APIToken()
	cl, err := client.NewTLS(n.HTTPURL(), token, pool)
	if err != nil {
		t.Fatal(err)
	}
	if ms, err := cl.Members(context.Background()); err != nil || len(ms) != 1 {
		t.Fatalf("members over TLS: %v %v", ms, err)
	}
	untrusting, _ := client.New(n.HTTPURL(), token)
	if _, err := untrusting.Members(context.Background()); err == nil {
		t.Fatal("a client that does not trust the CA was served")
	}
	plain, _ := client.New(strings.Replace(n.HTTPURL(), "https://", "http://", 1), token)
	if _, err := plain.Members(context.Background()); err == nil {
		t.Fatal("plain http was served")
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and returns a
// pool that trusts it.
func selfSigned(t *testing.T, certFile, keyFile string) *x509.CertPool {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "shoal test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// TestRefusesClearAPIBeyondLoopback: the API beyond loopback needs TLS or
// --insecure.
func TestRefusesClearAPIBeyondLoopback(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{})
	cfg := c.Config(0)
	cfg.Name, cfg.DataDir, cfg.Join = "other", t.TempDir(), nil
	cfg.HTTPAddr = "0.0.0.0:0"
	if _, err := peer.New(cfg); err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("clear API on 0.0.0.0: %v", err)
	}
}

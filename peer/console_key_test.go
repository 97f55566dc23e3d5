package peer

import (
	"strings"
	"testing"
	"time"
)

// TestConsoleSessionCookie: a session cookie is good, with the same CSRF
// token, on every console that holds the key until it expires, and on
// none without the key; a changed expiry, nonce or MAC, or a malformed
// value, is refused.
func TestConsoleSessionCookie(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	a, b, other := newConsole(key), newConsole(key), newConsole(nil)
	now := time.Unix(1_800_000_000, 0)
	v := a.newSession(now.Add(consoleSessionTTL))
	sa, okA := a.check(v, now)
	sb, okB := b.check(v, now.Add(consoleSessionTTL-time.Second))
	if !okA || !okB || sa.csrf != sb.csrf || len(sa.csrf) != 64 || !sa.expires.Equal(now.Add(consoleSessionTTL)) {
		t.Fatalf("a session on two consoles with one key: %v %v %+v %+v", okA, okB, sa, sb)
	}
	if _, ok := b.check(v, now.Add(consoleSessionTTL)); ok {
		t.Fatal("an expired session was accepted")
	}
	if _, ok := other.check(v, now); ok {
		t.Fatal("a session signed with another key was accepted")
	}
	if w := a.newSession(now.Add(time.Hour)); func() string { s, _ := a.check(w, now); return s.csrf }() == sa.csrf {
		t.Fatal("two sessions share a CSRF token")
	}
	f := strings.Split(v, ".")
	later := "v1." + "9" + f[1][1:] + "." + f[2] + "." + f[3]
	nonce := "v1." + f[1] + "." + strings.Repeat("0", 32) + "." + f[3]
	mac := "v1." + f[1] + "." + f[2] + "." + strings.Repeat("0", 64)
	for _, bad := range []string{later, nonce, mac, "", "v1", f[1] + "." + f[2] + "." + f[3], "v2." + f[1] + "." + f[2] + "." + f[3], v + ".x", v + strings.Repeat("a", 300)} {
		if _, ok := a.check(bad, now); ok {
			t.Errorf("accepted %q", bad)
		}
	}
}

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// screenshotDir is where TestConsoleInBrowser writes its screenshots:
// $SHOAL_SCREENSHOTS, else bin/console-screenshots in the repository.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("SHOAL_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(repoRoot, "bin", "console-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// needChromium returns Chromium's path. Under CI=true a missing browser
// fails the test (.ci/console-tools.sh installs it); elsewhere it skips.
func needChromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (Debian package chromium; .ci/console-tools.sh installs it)")
	}
	t.Skip("skipped: chromium is not installed (Debian package chromium; .ci/console-tools.sh installs it)")
	return ""
}

// TestConsoleInBrowser drives the web console in headless Chromium against
// three agents: it logs in through the one-time link `shoal ui` prints,
// sees 3 alive members, starts a job from the CLI and sees it reach
// succeeded without a reload, browses the files and a file's blocks, opens
// a failed streaming attempt's log, and kills a running job with the
// confirmed button. Each page's screenshot is written to screenshotDir.
func TestConsoleInBrowser(t *testing.T) {
	chrome := needChromium(t)
	e, st := startFSEnv(t, 3)
	url := st["node1"][1]
	in := filepath.Join(e.dir, "in.txt")
	os.WriteFile(in, []byte(strings.Repeat("the console shows the cluster\n", 6000)), 0o644)
	e.mustCLI(url, "fs", "put", in, "/in/words.txt", "--block-size", "64K")
	link := strings.TrimSpace(e.mustCLI(url, "ui"))
	if !strings.Contains(link, "/ui/login?code=") {
		t.Fatalf("shoal ui printed %q", link)
	}
	shots := screenshotDir(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.WindowSize(1400, 1000))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	// step runs actions with a deadline: every wait below is for an
	// element or a value, bounded by it.
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 60*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, actions...); err != nil {
			page, _ := chromedp.Run(browser, chromedp.Evaluate[string](`document.body.innerText`))
			t.Fatalf("%s: %v\npage:\n%s", what, err, page)
		}
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(shots, name+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s", p)
	}
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(browser, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}

	// click clicks the element sel selects in one evaluation: the page is
	// rebuilt every second, so an element found by one call can be gone by
	// the next (chromedp.Click finds, then clicks).
	click := func(sel string) chromedp.Action[chromedp.Void] {
		js := fmt.Sprintf(`(() => { const el = document.querySelector(%q); if (!el) return "missing"; el.click(); return "ok"; })()`, sel)
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			v, err := chromedp.Evaluate[string](js)(ctx, tg)
			if err == nil && v != "ok" {
				err = fmt.Errorf("no element %s to click", sel)
			}
			return chromedp.Void{}, err
		}
	}

	// Without the link: only the login page.
	step("console without a session", chromedp.Navigate(url+"/ui/"), chromedp.WaitVisible(chromedp.ID("message")))
	shot("0-login")

	// Log in; the cluster page shows 3 alive members.
	step("log in", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`#members tr[data-member="node3"] td.state-alive`)))
	if n := eval(`String(document.querySelectorAll("#members td.state-alive").length)`); n != "3" {
		t.Fatalf("%s alive members shown, want 3", n)
	}
	eval(`window.shoalNoReload = "yes"; "ok"`) // gone if the page reloads
	shot("1-cluster")

	// Another agent's console, through the member's link: the session
	// made by node1 opens it (the browser sends the cookie to every port
	// of 127.0.0.1) without another login.
	other := eval(`document.querySelector('#members tr[data-member="node2"] a.console-link').href`)
	if other != st["node2"][1]+"/ui/" {
		t.Fatalf("node2's console link is %q, want %q", other, st["node2"][1]+"/ui/")
	}
	step("another agent's console", chromedp.Navigate(other), chromedp.WaitVisible(chromedp.CSS(`#members tr[data-member="node3"] td.state-alive`)))
	if who := eval(`document.getElementById("node").textContent`); !strings.HasPrefix(who, "agent node2 ") {
		t.Fatalf("after following node2's link the console is %q", who)
	}
	shot("1b-other-agent")

	// Files: the directory, then the file's blocks with their holders.
	step("files", chromedp.Navigate(url+"/ui/#/files?path=/in"), chromedp.WaitVisible(chromedp.CSS(`#files a`)))
	eval(`window.shoalNoReload = "yes"; "ok"`) // Navigate loaded the page again
	shot("2-files")
	step("a file's blocks", click(`#files a`), chromedp.WaitVisible(chromedp.CSS(`#blocks td.health-ok`)))
	shot("3-file-blocks")

	// A job started from the CLI reaches succeeded on the jobs page, which
	// is not reloaded.
	step("jobs page", chromedp.Click(chromedp.ID("nav-jobs")), chromedp.WaitVisible(chromedp.ID("jobs")))
	out := e.mustCLI(url, "job", "run", "wordcount", "--input", "/in/words.txt", "--output", "/out/wc", "--reducers", "2", "--detach")
	id := regexp.MustCompile(`job-[a-z0-9-]+`).FindString(out)
	if id == "" {
		t.Fatalf("no job ID: %q", out)
	}
	step("job succeeds", chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#jobs tr[data-job=%q] td.state-succeeded`, id))))
	if eval(`String(window.shoalNoReload)`) != "yes" {
		t.Fatal("the page was reloaded")
	}
	shot("4-jobs")
	step("job page", click(fmt.Sprintf(`#jobs tr[data-job=%q] a`, id)),
		chromedp.WaitVisible(chromedp.CSS(`#attempts td.state-succeeded`)), chromedp.WaitVisible(chromedp.CSS(`#timeline .att.succeeded`)),
		chromedp.WaitVisible(chromedp.CSS(`#phases`)))
	// Every ended attempt shows whether its map read a local copy and its
	// bytes in and out; the phases their median and max.
	check := eval(`(() => {
	  const rows = [...document.querySelectorAll("#attempts tr[data-task]")].filter(r => r.querySelector("td.state-succeeded"));
	  const bad = rows.filter(r => r.querySelector("td.in").textContent === "-" || r.querySelector("td.out").textContent === "-" ||
	    (r.dataset.task.startsWith("m-") ? !["yes", "no"].includes(r.querySelector("td.local").textContent) : r.querySelector("td.local").textContent !== "-"));
	  const maps = rows.filter(r => r.dataset.task.startsWith("m-")).length;
	  const phase = document.querySelector('#phases tr[data-phase="map"]');
	  return rows.length + " succeeded, " + maps + " maps, " + bad.length + " without IO; map phase: " + (phase ? phase.textContent : "none");
	})()`)
	if !regexp.MustCompile(`^\d+ succeeded, [1-9]\d* maps, 0 without IO; map phase: map.* of `).MatchString(check) {
		t.Fatalf("attempts table: %s", check)
	}
	shot("5-job")

	// A failed streaming attempt's log, opened from the job page.
	mapper := `for i in $(seq 1 30); do echo "console stderr line $i" >&2; done; exit 5`
	r := e.cli(url, "streaming", "-input", "/in/words.txt", "-output", "/fails", "-mapper", mapper, "-reducer", "cat", "-max-attempts", "1")
	fid := regexp.MustCompile(`job-[a-z0-9-]+`).FindString(r.stderr)
	if r.code == 0 || fid == "" {
		t.Fatalf("failing streaming job: exit %d: %s", r.code, r.stderr)
	}
	step("failed job page", chromedp.Navigate(url+"/ui/#/job/"+fid), chromedp.WaitVisible(chromedp.CSS(`#attempts td.state-failed`)), chromedp.WaitVisible(chromedp.ID("job-error")))
	shot("6-failed-job")
	step("open the failed attempt's log", click(`#attempts tr:has(td.state-failed) a.log`), chromedp.WaitVisible(chromedp.ID("log")))
	if log := eval(`document.getElementById("log").textContent`); !strings.Contains(log, "console stderr line 1\n") || !strings.Contains(log, "attempt failed") {
		t.Fatalf("log shown:\n%s", log)
	}
	shot("7-log")

	// Kill a running job: the button asks, then POSTs.
	gate := filepath.Join(e.dir, "never")
	out = e.mustCLI(url, "streaming", "-input", "/in/words.txt", "-output", "/killme", "-reducer", "NONE", "-detach",
		"-mapper", fmt.Sprintf(`while [ ! -e %s ]; do sleep 0.1; done; cat`, gate))
	kid := regexp.MustCompile(`job-[a-z0-9-]+`).FindString(out)
	step("running job page", chromedp.Navigate(url+"/ui/#/job/"+kid), chromedp.WaitVisible(chromedp.CSS(`#attempts td.state-running`)), chromedp.WaitVisible(chromedp.ID("kill")))
	step("ask to kill", click("#kill"), chromedp.WaitVisible(chromedp.ID("kill-confirm")))
	shot("8-kill-confirm")
	step("kill", click("#kill-yes"), chromedp.WaitVisible(chromedp.CSS(`#job-state.state-killed`)))
	shot("9-killed")
	if s := e.mustCLI(url, "job", "status", kid); !strings.Contains(s, "killed") {
		t.Fatalf("status after the kill:\n%s", s)
	}
}

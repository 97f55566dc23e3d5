#!/usr/bin/env bash
# Installs the tools the metrics and console tests drive, when missing:
# promtool (from Debian's prometheus package), which checks a live /metrics
# scrape and the alert rules in deploy/, and headless Chromium (Debian's
# chromium package), which drives the web console. Idempotent and quick when it is there. Under
# CI=true a test that needs a missing tool fails; elsewhere it skips and
# says why.
set -uo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo -n"
	echo "installing ${missing[*]}"
	$sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		echo "warning: could not install ${missing[*]}; the tests that need them will fail under CI=true" >&2
fi
exit 0

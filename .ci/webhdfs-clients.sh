#!/usr/bin/env bash
# Installs the real WebHDFS clients the e2e tests drive, and bzip2 and
# zstd for the compression tests, when missing:
# Debian's python3-fsspec, python3-pandas and python3-requests (for
# /usr/bin/python3), and Node's webhdfs package under
# e2e/testdata/webhdfs/node_modules (ignored by git). Idempotent: it does
# nothing when every client is there. A client that cannot be installed
# makes its tests skip with the reason.
set -uo pipefail
cd "$(dirname "$0")/.."

missing=()
/usr/bin/python3 -c 'import fsspec' 2>/dev/null || missing+=(python3-fsspec)
/usr/bin/python3 -c 'import pandas' 2>/dev/null || missing+=(python3-pandas)
/usr/bin/python3 -c 'import requests' 2>/dev/null || missing+=(python3-requests)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# The compression tests compress with the real tools.
command -v bzip2 >/dev/null || missing+=(bzip2)
command -v zstd >/dev/null || missing+=(zstd)
if [ ${#missing[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo -n"
	echo "installing ${missing[*]}"
	$sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null ||
		echo "warning: could not install ${missing[*]}; their WebHDFS tests will skip" >&2
fi

dir=e2e/testdata/webhdfs
if [ ! -d "$dir/node_modules/webhdfs" ] && command -v npm >/dev/null; then
	echo "installing the webhdfs npm package into $dir"
	(cd "$dir" && npm install --no-audit --no-fund --silent) ||
		echo "warning: could not install the webhdfs npm package; its test will skip" >&2
fi
exit 0

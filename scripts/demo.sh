#!/usr/bin/env bash
# demo.sh — what `make run` shows: a 3-node cluster on this machine counts
# the words of ~50 MB of generated text.
#
# Environment: SHOAL_CLUSTER_DIR (default ./.cluster), SHOAL_BIN (default
# ./bin/shoal), NODES (default 3), DEMO_BYTES (default 50MB).
set -euo pipefail

DIR=${SHOAL_CLUSTER_DIR:-./.cluster}
BIN=${SHOAL_BIN:-./bin/shoal}
NODES=${NODES:-3}
BYTES=${DEMO_BYTES:-50MB}
export SHOAL_CLUSTER_DIR=$DIR SHOAL_BIN=$BIN
here=$(dirname "$0")

step() { printf '\n== %s\n' "$*"; }

step "starting $NODES nodes"
"$here/local-cluster.sh" start "$NODES"
addr=$("$here/local-cluster.sh" status | awk '$2 != "-" {print $3; exit}')
export SHOAL_ADDR=$addr SHOAL_SECRET_FILE=$DIR/secret
"$BIN" members

step "generating $BYTES of text"
sample=$DIR/sample.txt
if [ ! -s "$sample" ]; then
	"$BIN" gen text --bytes "$BYTES" --seed 42 --output "$sample"
fi
ls -l "$sample"

step "storing it in the cluster (8 MB blocks, 3 replicas)"
"$BIN" fs put "$sample" /demo/sample.txt --block-size 8MB --force
"$BIN" fs ls /demo

step "running wordcount"
out=/demo/wordcount-$(date +%Y%m%d-%H%M%S)
"$BIN" job run wordcount --input /demo/sample.txt --output "$out" --reducers 3

step "the 10 most frequent words"
"$BIN" fs cat "$out/part-*" | sort -t "$(printf '\t')" -k2,2nr -k1,1 | awk 'NR <= 10'

step "done"
echo "output:   $out (shoal fs ls $out; shoal fs cat '$out/part-*')"
echo "cluster:  $DIR — scripts/local-cluster.sh status | stop | clean"
echo "client:   ./bin/shoal members (in this directory it finds the running cluster by itself;"
echo "          elsewhere: export SHOAL_ADDR=$addr SHOAL_SECRET_FILE=$DIR/secret)"

#!/usr/bin/env python3
# The classic Hadoop Streaming word count reducer: sums runs of equal keys.
import sys

out = sys.stdout.buffer
current, total = None, 0
for line in sys.stdin.buffer:
    key, _, value = line.rstrip(b"\n").partition(b"\t")
    if key != current:
        if current is not None:
            out.write(current + b"\t" + str(total).encode() + b"\n")
        current, total = key, 0
    total += int(value)
if current is not None:
    out.write(current + b"\t" + str(total).encode() + b"\n")

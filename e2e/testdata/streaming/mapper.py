#!/usr/bin/env python3
# The classic Hadoop Streaming word count mapper: word<TAB>1 per token.
import sys

out = sys.stdout.buffer
for line in sys.stdin.buffer:
    for word in line.split():
        out.write(word + b"\t1\n")

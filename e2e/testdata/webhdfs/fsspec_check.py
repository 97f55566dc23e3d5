"""Drives Shoal's WebHDFS with fsspec and pandas, as users do.

Usage: fsspec_check.py HOST PORT TOKEN SEED
  /data/in.txt must hold the bytes of the local file $IN_TXT, and
  /data/table.csv those of $TABLE_CSV; both were put with `shoal fs put`.
The 20 MB file it writes is left at /data/big.bin for the caller to check,
with its local copy at $BIG_OUT, then removed once the caller says so on
stdin. Any mismatch exits non-zero with one line on stderr.
"""
import os
import random
import sys

import fsspec
import pandas as pd
from fsspec.implementations.webhdfs import WebHDFS


def fail(msg):
    print("fsspec_check: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    host, port, token, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    rng = random.Random(seed)
    fs = WebHDFS(host, port=port, token=token)

    # ls
    want = open(os.environ["IN_TXT"], "rb").read()
    entries = {e["name"]: e for e in fs.ls("/data", detail=True)}
    e = entries.get("/data/in.txt")
    if e is None or e["type"] != "file" or e["size"] != len(want):
        fail("ls /data: %r" % entries)
    if fs.info("/data")["type"] != "directory":
        fail("info /data: not a directory")

    # open + random-access read, in small blocks so that every read is a
    # ranged OPEN (redirected to the node holding the block).
    with fs.open("/data/in.txt", "rb", block_size=64 << 10) as f:
        for _ in range(40):
            off = rng.randrange(len(want))
            n = rng.randrange(1, 200 << 10)
            f.seek(off)
            got = f.read(n)
            if got != want[off:off + n]:
                fail("read %d bytes at %d: %d bytes differ" % (n, off, len(got)))
        f.seek(0)
        if f.read() != want:
            fail("whole read differs")

    # pandas read_csv over webhdfs:// equals reading the local file.
    url = "webhdfs://%s:%d/data/table.csv" % (host, port)
    remote = pd.read_csv(url, storage_options={"token": token})
    local = pd.read_csv(os.environ["TABLE_CSV"])
    if not remote.equals(local) or len(local) == 0:
        fail("read_csv over webhdfs differs from the local file: %d vs %d rows" % (len(remote), len(local)))

    # write 20 MB (CREATE, then an APPEND per 5 MB buffer), R=1.
    big = rng.randbytes(20 << 20)
    with fs.open("/data/big.bin", "wb", replication=1) as f:
        for i in range(0, len(big), 3 << 20):
            f.write(big[i:i + (3 << 20)])
    with open(os.environ["BIG_OUT"], "wb") as out:
        out.write(big)
    if fs.info("/data/big.bin")["size"] != len(big):
        fail("size after write: %r" % fs.info("/data/big.bin"))
    if fs.cat_file("/data/big.bin", start=7 << 20, end=(7 << 20) + 1000) != big[7 << 20:(7 << 20) + 1000]:
        fail("ranged read of the written file differs")
    print("written", flush=True)
    sys.stdin.readline()  # the caller compares /data/big.bin

    # rm
    fs.rm("/data/big.bin")
    if fs.exists("/data/big.bin"):
        fail("big.bin still there after rm")
    try:
        fs.info("/data/big.bin")
        fail("info of a removed file succeeded")
    except FileNotFoundError:
        pass
    # The wrong token is a PermissionError.
    try:
        WebHDFS(host, port=port, token="0" * 48).ls("/data")
        fail("a wrong token was accepted")
    except PermissionError:
        pass
    # mkdir, mv, an empty directory listed.
    fs.mkdir("/data/empty")
    if fs.ls("/data/empty") != [] or fs.info("/data/empty")["type"] != "directory":
        fail("empty directory: %r" % fs.ls("/data/empty"))
    fs.mv("/data/empty", "/data/moved")
    if not fs.isdir("/data/moved") or fs.exists("/data/empty"):
        fail("mv of a directory")
    print("ok", flush=True)


main()

#!/usr/bin/env python3
# Runs mapper.py or reducer.py (argv[1]), but on each attempt first fails
# with probability 1/3, or sleeps 0-10 s with probability 1/3.
import os, random, runpy, sys, time

rng = random.Random(os.environ.get("mapreduce_task_attempt_id", "") + os.environ.get("FLAKY_SEED", ""))
roll = rng.random()
if roll < 1 / 3:
    sys.stderr.write("flaky: failing this attempt on purpose\n")
    sys.exit(1)
if roll < 2 / 3:
    time.sleep(rng.uniform(0, 10))
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")

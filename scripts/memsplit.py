#!/usr/bin/env python3
"""Where a process's resident memory is, every 0.3 s until it exits (issue 10's memory work).

    scripts/memsplit.py PID OUT.txt

Each line: seconds since the start, then MiB resident in
  arena  glibc's thread arenas (64 MiB-aligned anonymous mappings of at most 64 MiB): small allocations
         of other threads than the main one — librdkafka's messages, decoded records, texts;
  big    other anonymous mappings of 1 MiB or more: allocations above the mmap threshold (the table's
         slot arrays and record arenas, librdkafka's fetch buffers);
  heap   the main thread's heap;
  other  everything else (the binary, libraries, stacks, small mappings).
"""
import re
import sys
import time

MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$")


def split(pid):
    with open(f"/proc/{pid}/smaps") as f:
        text = f.read()
    out = {"arena": 0, "big": 0, "heap": 0, "other": 0}
    start = end = 0
    name = ""
    for line in text.split("\n"):
        m = MAPPING.match(line)
        if m:
            start, end, name = int(m.group(1), 16), int(m.group(2), 16), m.group(3)
            continue
        if line.startswith("Rss:"):
            kb = int(line.split()[1])
            if name == "[heap]":
                out["heap"] += kb
            elif name == "" and start % (64 << 20) == 0 and end - start <= (64 << 20):
                out["arena"] += kb
            elif name == "" and end - start >= (1 << 20):
                out["big"] += kb
            else:
                out["other"] += kb
    return out


def main():
    pid, path = sys.argv[1], sys.argv[2]
    t0 = time.time()
    with open(path, "w") as out:
        while True:
            try:
                parts = split(pid)
            except OSError:
                break
            out.write("%.1f %s\n" % (time.time() - t0, " ".join("%s=%d" % (k, v >> 10) for k, v in parts.items())))
            out.flush()
            time.sleep(0.3)


if __name__ == "__main__":
    main()

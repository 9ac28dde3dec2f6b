#!/usr/bin/env python3
"""Peak anonymous memory of a command: polls /proc/PID/status every 10 ms for RssAnon
(memory that is the process's own: heap, stacks; not the memory-mapped data cache or
other file pages, which the kernel can drop and read again) and VmHWM (all resident
memory, file pages included), and prints their peaks in MB. Linux only; no packages.

    python3 tools/bench/peak_memory.py -- srgraph train wdsr-b --blocks 4 --data /tmp/div2k-100 --steps 20
"""
import subprocess
import sys
import time


def status(pid):
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("RssAnon", "VmHWM"):
                    fields[key] = int(value.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return fields


def main():
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        sys.exit(__doc__)
    started = time.time()
    p = subprocess.Popen(argv)
    peak = {"RssAnon": 0, "VmHWM": 0}
    while p.poll() is None:
        for k, v in status(p.pid).items():
            peak[k] = max(peak[k], v)
        time.sleep(0.01)
    print(
        f"peak anonymous memory (RssAnon) {peak['RssAnon'] / 1e6:.0f} MB, peak resident (VmHWM) "
        f"{peak['VmHWM'] / 1e6:.0f} MB, {time.time() - started:.0f} s, exit code {p.returncode}",
        file=sys.stderr,
    )
    sys.exit(p.returncode)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""How loaded the machine was by others during a benchmark.

    bench/busy.py OUT &     ...     kill $!     (then OUT holds one line of key=value pairs)

Samples every second until SIGTERM: the machine's busy CPU (/proc/stat) and the CPU of every
process in this process's session (the benchmark that started it and everything under it).
The difference is what other processes used. A process of ours that ends between two samples
loses its last second to "others", so the figure errs high, never low. Writes
others_cores_mean, others_cores_max (over 10 s windows), busy_cores_mean and seconds.
"""
import os
import signal
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle, iowait
    return (sum(v[:8]) - idle) / TICK


def session_cpu(sid, last):
    """CPU seconds used since the last sample by the live processes of session `sid`."""
    used, seen = 0.0, {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rfind(")") + 2:].split()
        if int(fields[3]) != sid:  # field 6: session
            continue
        key = (pid, fields[19])  # field 22: start time
        cpu = (int(fields[11]) + int(fields[12])) / TICK  # fields 14, 15: utime, stime
        seen[key] = cpu
        used += cpu - (cpu if last is None else last.get(key, 0.0))
    return used, seen


def main():
    out = sys.argv[1]
    sid = os.getsid(0)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    busy0 = machine_busy()
    _, seen = session_cpu(sid, None)
    start = time.monotonic()
    others, busy = [], []  # per sample: cores others used, cores busy
    last = start
    while not stop:
        time.sleep(1)
        busy1, now = machine_busy(), time.monotonic()
        mine, seen = session_cpu(sid, seen)  # a process of ours new since the last sample counts from zero
        busy.append((busy1 - busy0) / (now - last))
        others.append(max(0.0, (busy1 - busy0) - mine) / (now - last))
        busy0, last = busy1, now
    secs = time.monotonic() - start
    windows = [sum(others[i:i + 10]) / len(others[i:i + 10]) for i in range(0, len(others), 10)] or [0.0]
    with open(out, "w") as f:
        f.write(f"others_cores_mean={sum(others) / max(1, len(others)):.2f} "
                f"others_cores_max={max(windows):.2f} busy_cores_mean={sum(busy) / max(1, len(busy)):.2f} "
                f"seconds={secs:.0f}\n")


if __name__ == "__main__":
    main()

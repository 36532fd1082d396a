"""Reads a load generator's output; prints "rps p50_ms p99_ms requests errors".

errors counts non-2xx responses and socket errors (connect, read, write, timeout),
so that the benchmark can refuse a run in which a target failed requests.

usage: parse_load.py wrk OUTPUT | parse_load.py h2load OUTPUT LOG_FILE
"""

import re
import sys


def wrk(text):
    def ms(value):
        number, unit = re.match(r"([\d.]+)(us|ms|s|m)", value).groups()
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non_2xx:
        errors += int(non_2xx.group(1))
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    if socket:
        errors += sum(int(n) for n in socket.groups())
    return rps, p50, p99, requests, errors


def h2load(text, log_path):
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text).group(1))
    counts = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
        r"(\d+) failed, (\d+) errored, (\d+) timeout",
        text,
    )
    done = int(counts.group(3))
    failed, errored, timeout = (int(counts.group(i)) for i in (5, 6, 7))
    status = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    non_2xx = sum(int(status.group(i)) for i in (2, 3, 4)) if status else 0
    errors = failed + errored + timeout + non_2xx
    # The log file has one line per request: start (µs), status, elapsed (µs).
    latencies = []
    with open(log_path) as log:
        for line in log:
            fields = line.split()
            if len(fields) >= 3:
                latencies.append(int(fields[2]) / 1000.0)
    latencies.sort()

    def quantile(q):
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    return rps, quantile(0.50), quantile(0.99), done, errors


def main():
    kind, output = sys.argv[1], open(sys.argv[2]).read()
    try:
        if kind == "wrk":
            rps, p50, p99, requests, errors = wrk(output)
        else:
            rps, p50, p99, requests, errors = h2load(output, sys.argv[3])
    except (AttributeError, OSError, ValueError) as error:
        sys.stderr.write(f"could not read the {kind} output ({error}):\n{output}\n")
        print("0 nan nan 0 1")
        return
    print(f"{rps:.0f} {p50:.3f} {p99:.3f} {requests} {errors}")


main()

"""Turns bench/router.sh's raw results into markdown tables.

For every configuration: each target's median requests/s, p99 and CPU µs per
request over the rounds, and rampart's ratios to each peer as the median of the
per-round ratios with their spread (min–max), which is what survives drift on a
shared machine: both targets of a ratio ran in the same round, seconds apart.

usage: router_report.py results.tsv
"""

import csv
import statistics
import sys
from collections import defaultdict

PEERS = ["nginx", "haproxy", "baseline", "direct"]


def main():
    rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
    # (connections, mode, size) -> round -> target -> row
    runs = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        key = (int(row["connections"]), row["mode"], row["size"])
        runs[key][int(row["round"])][row["target"]] = row
    targets = []
    for row in rows:
        if row["target"] not in targets:
            targets.append(row["target"])

    def median(key, target, field):
        values = [float(r[target][field]) for r in runs[key].values() if target in r]
        return statistics.median(values) if values else float("nan")

    def ratio(key, a, b, field):
        values = [
            float(r[a][field]) / float(r[b][field])
            for r in runs[key].values()
            if a in r and b in r and float(r[b][field]) > 0
        ]
        if not values:
            return "–"
        return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"

    print("### Medians per target\n")
    print("| connections | mode | size | target | requests/s | p99 ms | CPU µs/req | errors |")
    print("|---:|---|---|---|---:|---:|---:|---:|")
    for key in sorted(runs):
        for target in targets:
            errors = sum(int(r[target]["errors"]) for r in runs[key].values() if target in r)
            print(
                f"| {key[0]} | {key[1]} | {key[2]} | {target} | {median(key, target, 'rps'):.0f} "
                f"| {median(key, target, 'p99_ms'):.2f} | {median(key, target, 'cpu_us_per_request'):.1f} | {errors} |"
            )

    peers = [p for p in PEERS if p in targets]
    if "rampart" not in targets or not peers:
        return
    print("\n### rampart against each peer: median of per-round ratios (min–max)\n")
    print("Throughput > 1 and p99, CPU < 1 are better for rampart.\n")
    header = "| connections | mode | size |"
    for peer in peers:
        header += f" rps ÷ {peer} | p99 ÷ {peer} | CPU ÷ {peer} |"
    if "rampart_nometrics" in targets:
        header += " metrics cost |"
    print(header)
    print("|---:|---|---|" + "---:|" * (3 * len(peers) + ("rampart_nometrics" in targets)))
    for key in sorted(runs):
        line = f"| {key[0]} | {key[1]} | {key[2]} |"
        for peer in peers:
            line += (
                f" {ratio(key, 'rampart', peer, 'rps')} | {ratio(key, 'rampart', peer, 'p99_ms')}"
                f" | {ratio(key, 'rampart', peer, 'cpu_us_per_request')} |"
            )
        if "rampart_nometrics" in targets:
            # Throughput lost to per-version metrics: nometrics ÷ metrics − 1.
            values = [
                float(r["rampart_nometrics"]["rps"]) / float(r["rampart"]["rps"]) - 1
                for r in runs[key].values()
                if "rampart" in r and "rampart_nometrics" in r and float(r["rampart"]["rps"]) > 0
            ]
            line += f" {100 * statistics.median(values):+.1f} % |" if values else " – |"
        print(line)


main()

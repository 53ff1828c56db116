#!/usr/bin/env python3
"""format-results.py — the table of `make bench`, with ratios and targets.

  format-results.py --tsv RESULTS.tsv --json OUT.json [--seconds S]
                    [--processes N] [--rounds R] [--load L] [--cpus N]
      reads run-bench.sh's lines (KIND PATH ROUND, then RATE COUNT SECONDS,
      or n/a, or FAILED), writes OUT.json ({"rsa2048": {path: signatures per
      second or null}, "ec_p256": {...}}) and prints the table.  A path's
      rate is all its signatures over all its time; "±N%" is half the
      spread of its rounds' rates around that rate.
  format-results.py --markdown RESULTS.json
      prints the same tables in Markdown, for the README.
"""
import argparse
import json
import sys

KINDS = [("rsa2048", "RSA-2048"), ("ec_p256", "EC P-256")]

# Every path of the issue, in table order; raw_2threads is extra (the
# ceiling the library_2threads target is measured against).
PATHS = [
    ("openssl_memory", "OpenSSL, key in memory (software ceiling)"),
    ("raw", "raw C_Sign loop, one session (baseline)"),
    ("raw_2threads", "raw C_Sign loop, 2 threads (extra)"),
    ("library", "custody signer library, 1 thread"),
    ("library_2threads", "custody signer library, 2 threads"),
    ("provider", "EVP_DigestSign through provider custody (custody:TYPE)"),
    ("engine", "EVP_DigestSign through engine custody"),
    ("cli_per_process", "one `custody sign` process per signature"),
    ("raw_per_process", "one raw_sign_once process per signature (floor)"),
    ("pkcs11_tool_per_process", "one `pkcs11-tool --sign` process per signature"),
    ("cli_per_process_agent", "one `custody sign` process per signature, through the agent"),
    ("agent", "one client signing in a loop through the agent"),
    ("agent_8clients", "8 clients signing at once through the agent"),
    ("raw_over_socket", "raw C_Sign in another process, over a Unix socket (an agent's floor)"),
    ("raw_over_socket_8clients", "the same, 8 clients at once"),
]

# (numerator, denominator, target: a number, {kind: number}, or None for
# information only)
RATIOS = [
    ("library", "raw", 0.97),
    ("library_2threads", "library", 1.7),
    ("provider", "raw", 0.95),
    ("engine", "raw", 0.95),
    ("cli_per_process", "raw_per_process", 0.85),
    ("cli_per_process", "pkcs11_tool_per_process", 1.0),
    ("cli_per_process_agent", "pkcs11_tool_per_process", 5.0),
    ("cli_per_process_agent", "raw_per_process", 4.0),
    # A target per key kind: an EC signature is cheap on the token, so
    # the agent's exchange weighs more against it.
    ("agent", "raw", {"rsa2048": 0.9, "ec_p256": 0.6}),
    ("agent_8clients", "raw_2threads", 0.9),
    ("raw", "openssl_memory", None),
    ("raw_2threads", "raw", None),
    # What a socket costs here, and what the agent costs beyond it.
    ("raw_over_socket", "raw", None),
    ("agent", "raw_over_socket", None),
    ("raw_over_socket_8clients", "raw_2threads", None),
    ("agent_8clients", "raw_over_socket_8clients", None),
]


def read_tsv(path):
    """{kind: {path: float or "n/a" or "FAILED"}}, {kind: {path: spread}}"""
    rounds = {k: {} for k, _ in KINDS}
    with open(path, encoding="utf-8") as f:
        for line in f:
            kind, name, _round, *value = line.rstrip("\n").split("\t")
            if kind not in rounds or name not in dict(PATHS):
                raise SystemExit(f"format-results: unknown result {kind} {name}")
            got = rounds[kind].setdefault(name, [])
            if got == "FAILED" or value == ["FAILED"]:
                rounds[kind][name] = "FAILED"
            elif value == ["n/a"]:
                rounds[kind][name] = "n/a"
            else:
                got.append((float(value[0]), int(value[1]), float(value[2])))
    cells = {k: {} for k, _ in KINDS}
    spread = {k: {} for k, _ in KINDS}
    for kind, by_path in rounds.items():
        for name, got in by_path.items():
            if isinstance(got, str) or not got:
                cells[kind][name] = got if isinstance(got, str) else "FAILED"
                continue
            total = sum(c for _, c, _ in got) / sum(t for _, _, t in got)
            cells[kind][name] = total
            rates = [r for r, _, _ in got]
            spread[kind][name] = (max(rates) - min(rates)) / 2 / total if total else 0
    return cells, spread


def to_json(cells):
    return {kind: {name: (round(v, 1) if isinstance(v, float) else None)
                   for name, _ in PATHS for v in [cells[kind].get(name, "n/a")]}
            for kind, _ in KINDS}


def rate(v, spread=None):
    if not isinstance(v, float):
        return v
    if spread is None:
        return f"{v:,.1f}"
    return f"{v:,.1f} ±{100 * spread:.0f}%"


def target_of(target, kind):
    return target.get(kind) if isinstance(target, dict) else target


def target_text(target):
    if target is None:
        return "(info)"
    if isinstance(target, dict):
        return ">= " + "/".join(f"{target[k]:.2f}" for k, _ in KINDS if k in target)
    return f">= {target:.2f}"


def ratio_cell(cells, kind, num, den, target):
    target = target_of(target, kind)
    a, b = cells[kind].get(num), cells[kind].get(den)
    if not isinstance(a, float) or not isinstance(b, float) or b == 0:
        return "n/a"
    r = a / b
    if target is None:
        return f"{r:.2f}"
    return f"{r:.2f} {'met' if r >= target else 'MISSED'}"


def rows(cells, spread=None):
    paths = [[name, desc] + [rate(cells[k].get(name, "n/a"),
                                  spread[k].get(name) if spread else None)
                             for k, _ in KINDS]
             for name, desc in PATHS]
    ratios = [[f"{num} / {den}", target_text(t)]
              + [ratio_cell(cells, k, num, den, t) for k, _ in KINDS]
              for num, den, t in RATIOS]
    return paths, ratios


def print_text(cells, spread, header):
    paths, ratios = rows(cells, spread)
    print(header)
    print()
    w = max(len(r[0]) for r in paths)
    print(f"{'path':<{w}}  {'RSA-2048':>16}  {'EC P-256':>16}  what")
    for name, desc, a, b in paths:
        print(f"{name:<{w}}  {a:>16}  {b:>16}  {desc}")
    print()
    w = max(len(r[0]) for r in ratios)
    print(f"{'ratio':<{w}}  {'target':<12}  {'RSA-2048':<12}  {'EC P-256':<12}")
    for name, target, a, b in ratios:
        print(f"{name:<{w}}  {target:<12}  {a:<12}  {b:<12}")


def print_markdown(cells):
    paths, ratios = rows(cells)
    print("| path | RSA-2048 | EC P-256 | what |")
    print("|---|---:|---:|---|")
    for name, desc, a, b in paths:
        print(f"| `{name}` | {a} | {b} | {desc} |")
    print()
    print("| ratio | target | RSA-2048 | EC P-256 |")
    print("|---|---|---|---|")
    for name, target, a, b in ratios:
        print(f"| {name} | {target.replace('>=', '≥')} | {a} | {b} |")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tsv")
    p.add_argument("--json")
    p.add_argument("--markdown", metavar="RESULTS_JSON")
    p.add_argument("--seconds", default="2")
    p.add_argument("--processes", default="100")
    p.add_argument("--rounds", default="1")
    p.add_argument("--load", default="unknown")
    p.add_argument("--cpus", default="?")
    a = p.parse_args()
    if a.markdown:
        with open(a.markdown, encoding="utf-8") as f:
            data = json.load(f)
        cells = {k: {n: (v if isinstance(v, (int, float)) else "n/a")
                     for n, v in data.get(k, {}).items()} for k, _ in KINDS}
        for k in cells:
            cells[k] = {n: float(v) if v != "n/a" else v for n, v in cells[k].items()}
        print_markdown(cells)
        return 0
    if not a.tsv or not a.json:
        p.error("--tsv and --json go together (or use --markdown RESULTS_JSON)")
    cells, spread = read_tsv(a.tsv)
    with open(a.json, "w", encoding="utf-8") as f:
        json.dump(to_json(cells), f, indent=2)
        f.write("\n")
    header = ("custody signing benchmarks: signatures per second on one throwaway "
              f"SoftHSM token\n{a.seconds} s per in-process path and {a.processes} "
              f"processes per per-process path, in {a.rounds} interleaved rounds; "
              f"{a.cpus} CPUs, 1-minute load average {a.load} at the start")
    wide = sorted(f"{name} {kind}" for kind, by_path in spread.items()
                  for name, v in by_path.items() if v > 0.10)
    if wide:
        header += ("\nnote: rounds spread by more than ±10% (" + ", ".join(wide) +
                   "): the machine was busy; read those ratios with care")
    print_text(cells, spread, header)
    return 0


if __name__ == "__main__":
    sys.exit(main())

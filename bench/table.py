"""Prints bench/run's results as one table: workload, backend, consentry,
baseline, ratio, target, PASS/FAIL.

bench/run records one line per round of each comparison (metric, backend,
round, consentry, baseline). A compared figure is that of its median
round: the rounds are ordered by their own ratio (consentry against the
baseline measured a minute apart on the same machine) and the middle one is
shown, its two figures and their ratio. With an even number of rounds, of
the two middle rounds the one worse for consentry. A figure that is not
compared (seed time, statements per request, memory growth) is the highest
of its rounds. Every round's ratio is listed under the table.
"""

import sys

# metric -> (label, how the ratio is formed, target text, check(ratio, backend))
RULES = {
    "seed_seconds": ("seed {people} people (s)", None, "< 60 s", lambda v, b: v < 60),
    "b1_rps": ("B1 person(id) req/s", "c/b", ">= 0.75x PG, 0.6x SQLite",
               lambda r, b: r >= (0.75 if b == "postgres" else 0.6)),
    "b1_p99_ms": ("B1 p99 latency (ms)", "c/b", "<= 1.5x", lambda r, b: r <= 1.5),
    "b2_rps": ("B2 people(first: 50) req/s", "c/b", ">= 0.6x", lambda r, b: r >= 0.6),
    "b2_page1000_vs_page1_rps": ("B2 page 1,000 vs page 1 req/s", "b/c", "<= 1.2x", lambda r, b: r <= 1.2),
    "b2_statements_per_request": ("B2 SQL statements per request", None, "<= 3", lambda v, b: v <= 3),
    "b3_chain_on_vs_off_rps": ("B3 chain on vs chain off req/s", "c/b", ">= 0.7x", lambda r, b: r >= 0.7),
    "b3_rps": ("B3 updateComplianceCard req/s (32 clients)", "c/b", ">= 0.6x", lambda r, b: r >= 0.6),
    "b4_seconds": ("B4 bulk 100,000 vs raw SQL (s)", "c/b", "<= 1.5x", lambda r, b: r <= 1.5),
    "b4_vs_after_only_sql_seconds": ("B4 vs raw SQL without old values (s)", "c/b", "(shown, not judged)", None),
    "b4_memory_growth_mib": ("B4 server memory growth (MiB)", None, "<= 100 MiB", lambda v, b: v <= 100),
    "b5_rows_per_s": ("B5 CSV export rows/s vs COPY/.csv", "c/b", ">= 0.5x", lambda r, b: r >= 0.5),
    "b5_peak_kib_1m_vs_100k": ("B5 peak RSS 1M vs 100k rows (KiB)", "c/b", "<= 1.2x", lambda r, b: r <= 1.2),
}

# Ratios that are better lower: those whose target is an upper bound, and
# B4's row shown beside its judged one (seconds, like it). Others are
# better higher.
LOWER_IS_BETTER = {m for m, (_, kind, target, _) in RULES.items()
                   if kind and target.startswith("<=")} | {"b4_vs_after_only_sql_seconds"}


def fmt(v):
    if v == "-":
        return "-"
    x = float(v)
    return f"{x:,.0f}" if x >= 100 else f"{x:,.2f}"


def ratio(metric, c, b):
    cv, bv = float(c), float(b)
    return cv / bv if RULES[metric][1] == "c/b" else bv / cv


def median_round(metric, rounds):
    """The round (consentry, baseline, ratio) whose ratio is the median."""
    ordered = sorted((ratio(metric, c, b), c, b) for c, b in rounds)
    n = len(ordered)
    # Even counts: the middle round worse for consentry.
    i = n // 2 if metric in LOWER_IS_BETTER else (n - 1) // 2
    r, c, b = ordered[i]
    return c, b, r


def main(path, people):
    # (metric, backend) -> [(consentry, baseline)] in round order
    results = {}
    for line in open(path):
        if not line.strip():
            continue
        metric, backend, _round, c, b = line.rstrip("\n").split("\t")
        results.setdefault((metric, backend), []).append((c, b))
    header = ("workload", "backend", "consentry", "baseline", "ratio", "target", "result")
    out = [header]
    rounds_text = []
    failed = 0
    for (metric, backend), rounds in results.items():
        label, ratio_kind, target, check = RULES[metric]
        label = label.format(people=f"{people:,}")
        if ratio_kind is None:
            c = max(rounds, key=lambda r: float(r[0]))[0]
            b, shown = "-", "-"
            ok = check(float(c), backend) if check else None
        else:
            c, b, r = median_round(metric, rounds)
            shown = f"{r:.2f}x"
            ok = check(r, backend) if check else None
            if len(rounds) > 1:
                each = ", ".join(f"{ratio(metric, rc, rb):.2f}x" for rc, rb in rounds)
                rounds_text.append(f"- {label}, {backend}: {each}")
        result = "-" if ok is None else "PASS" if ok else "FAIL"
        failed += ok is False
        out.append((label, backend, fmt(c), fmt(b), shown, target, result))
    widths = [max(len(r[i]) for r in out) for i in range(len(header))]
    for i, r in enumerate(out):
        print("| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    passed = sum(r[6] == "PASS" for r in out[1:])
    print(f"\n{passed} PASS, {failed} FAIL")
    if rounds_text:
        print("\nEach round's ratio, in round order (the table shows the median round):")
        print("\n".join(rounds_text))


if __name__ == "__main__":
    # bench/out/results.tsv, and the number of people seeded
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000)

"""Prints bench/run's results as one table: workload, backend, consentry,
baseline, ratio, target, PASS/FAIL."""

import sys

# metric -> (label, how the ratio is formed, target text, check(ratio, backend))
RULES = {
    "seed_seconds": ("seed 1,000,000 people (s)", None, "< 60 s", lambda v, b: v < 60),
    "b1_rps": ("B1 person(id) req/s", "c/b", ">= 0.75x PG, 0.6x SQLite",
               lambda r, b: r >= (0.75 if b == "postgres" else 0.6)),
    "b1_p99_ms": ("B1 p99 latency (ms)", "c/b", "<= 1.5x", lambda r, b: r <= 1.5),
    "b2_rps": ("B2 people(first: 50) req/s", "c/b", ">= 0.6x", lambda r, b: r >= 0.6),
    "b2_page1000_vs_page1_rps": ("B2 page 1,000 vs page 1 req/s", "b/c", "<= 1.2x", lambda r, b: r <= 1.2),
    "b2_statements_per_request": ("B2 SQL statements per request", None, "<= 3", lambda v, b: v <= 3),
    "b3_chain_on_vs_off_rps": ("B3 chain on vs chain off req/s", "c/b", ">= 0.7x", lambda r, b: r >= 0.7),
    "b3_rps": ("B3 updateComplianceCard req/s (32 clients)", "c/b", ">= 0.6x", lambda r, b: r >= 0.6),
    "b4_seconds": ("B4 bulk 100,000 vs raw SQL (s)", "c/b", "<= 1.5x", lambda r, b: r <= 1.5),
    "b4_vs_same_audit_sql_seconds": ("B4 vs the same audit rows in raw SQL (s)", "c/b", "(shown, not judged)", None),
    "b4_memory_growth_mib": ("B4 server memory growth (MiB)", None, "<= 100 MiB", lambda v, b: v <= 100),
    "b5_rows_per_s": ("B5 CSV export rows/s vs COPY/.csv", "c/b", ">= 0.5x", lambda r, b: r >= 0.5),
    "b5_peak_kib_1m_vs_100k": ("B5 peak RSS 1M vs 100k rows (KiB)", "c/b", "<= 1.2x", lambda r, b: r <= 1.2),
}


def fmt(v):
    if v == "-":
        return "-"
    x = float(v)
    return f"{x:,.0f}" if x >= 100 else f"{x:,.2f}"


def main(path):
    rows = [line.rstrip("\n").split("\t") for line in open(path) if line.strip()]
    header = ("workload", "backend", "consentry", "baseline", "ratio", "target", "result")
    out = [header]
    failed = 0
    for metric, backend, c, b in rows:
        label, ratio_kind, target, check = RULES[metric]
        if ratio_kind is None:
            value, ratio = float(c), "-"
            ok = check(value, backend) if check else None
        else:
            cv, bv = float(c), float(b)
            r = cv / bv if ratio_kind == "c/b" else bv / cv
            ratio = f"{r:.2f}x"
            ok = check(r, backend) if check else None
        result = "-" if ok is None else "PASS" if ok else "FAIL"
        failed += ok is False
        out.append((label, backend, fmt(c), fmt(b), ratio, target, result))
    widths = [max(len(r[i]) for r in out) for i in range(len(header))]
    for i, r in enumerate(out):
        print("| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    passed = sum(r[6] == "PASS" for r in out[1:])
    print(f"\n{passed} PASS, {failed} FAIL")


if __name__ == "__main__":
    main(sys.argv[1])

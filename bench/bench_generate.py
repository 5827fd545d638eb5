"""Time the synthetic bank generator and report its peak memory.

Usage: .venv/bin/python bench/bench_generate.py [customers] [out_dir]
"""

from __future__ import annotations

import resource
import sys
import tempfile
from pathlib import Path

from ingest.generator import generate_bank


def main() -> None:
    customers = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    out = (
        Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp(prefix="riskgraph-gen-"))
    )
    summary = generate_bank(out, customers=customers, seed=42, bad_rows=True, progress=True)
    # ru_maxrss is in KiB on Linux.
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total_rows = sum(summary.rows.values())
    size_mib = sum(p.stat().st_size for p in out.glob("*.csv")) / 2**20
    print(f"customers={customers} rows={total_rows} csv={size_mib:.0f} MiB")
    print(f"seconds={summary.seconds:.1f} peak_rss={peak_mib:.0f} MiB out={out}")
    for name, rows in summary.rows.items():
        print(f"  {name:20s} {rows:>12,}")


if __name__ == "__main__":
    main()

"""Run every benchmark and print one table: figure, reference, ratio, target, pass/fail.

    python -m benchmarks.run            # everything, full size (takes minutes)
    python -m benchmarks.run --quick    # smaller inputs, a first look
    python -m benchmarks.run annotate   # only the modules named

A benchmark is any module in this package with a ``run(quick) -> list[Result]``
function (see :mod:`benchmarks.common`); add a module and it appears here.
Exit status: 0 if every figure reached its target, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from pathlib import Path

from .common import Result, compile_bytecode

NOT_BENCHMARKS = {"run"}


def benchmark_modules() -> list[str]:
    """Every module of this package with a ``run(quick)`` function (helpers have none)."""
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)])
                   if m.name not in NOT_BENCHMARKS and not m.name.startswith("_"))
    return [name for name in names if callable(getattr(importlib.import_module(f"benchmarks.{name}"), "run", None))]


def format_table(results: list[Result]) -> str:
    header = ("figure", "reference", "ratio", "target", "result")
    rows = [(r.figure, r.reference, f"{r.ratio:.2f}{r.unit}", f">= {r.target:g}{r.unit}",
             "pass" if r.passed else "FAIL") for r in results]
    widths = [max(len(str(row[k])) for row in [header, *rows]) for k in range(len(header))]
    line = lambda row: "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the TCPChatX benchmarks.")
    parser.add_argument("modules", nargs="*", help=f"benchmarks to run (default: all of {benchmark_modules()})")
    parser.add_argument("--quick", action="store_true", help="smaller inputs, fewer repeats")
    args = parser.parse_args(argv)
    results: list[Result] = []
    compile_bytecode()  # every tcpchatx command is timed as an installed copy runs
    for name in args.modules or benchmark_modules():
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"running benchmarks.{name} ...", flush=True)
        results += module.run(quick=args.quick)
    print()
    print(format_table(results))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

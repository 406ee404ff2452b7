"""Benchmarks: ours against the baseline a user would otherwise run, per op, shared by ``fastrepr bench``,
``fastrepr demo`` and the pytest-benchmark view in benchmarks/.

  harness.py        timing, peak memory, the table, CSV rows, plots (imports nothing else of fastrepr)
  entries/<area>.py the entries of one area: sizes, ours, baseline (import only the harness and the public API)
  registry.py       REGISTRY, filled from the one explicit list of entry modules, and the runner, which
                    records which implementation ran (``fastrepr._backend.recording``)
"""
from .harness import CSV_FIELDS, Bench, Row, device_name, format_table, peak_memory, table, time_pair
from .registry import ENTRY_MODULES, REGISTRY, impl_label, plot, recorded_impl, register, run, save_csv

__all__ = ["Bench", "Row", "REGISTRY", "ENTRY_MODULES", "register", "run", "peak_memory", "time_pair",
           "format_table", "table", "save_csv", "plot", "device_name", "impl_label", "recorded_impl", "CSV_FIELDS"]

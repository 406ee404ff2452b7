"""Benchmark entries, one module per area (listed in ``fastrepr.bench.registry.ENTRY_MODULES``)."""

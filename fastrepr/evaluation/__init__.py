"""Evaluation of representations: word benchmarks (``words``) and probes (``probes``)."""

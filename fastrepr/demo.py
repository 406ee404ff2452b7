"""Moved to ``fastrepr.cli.demo`` (the demo prints, so it lives with the commands); this name keeps working."""
from .cli.demo import DEMO_SIZES, SECTIONS, benchmark_table, disentanglement, pairwise_differences, run
from .cli.demo import simclr_digits, vae_section, word2vec_demo, word2vec_section, word_benchmarks

__all__ = ["DEMO_SIZES", "SECTIONS", "benchmark_table", "disentanglement", "pairwise_differences", "run",
           "simclr_digits", "vae_section", "word2vec_demo", "word2vec_section", "word_benchmarks"]

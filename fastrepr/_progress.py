"""The one progress bar of fastrepr: tqdm when enabled, a silent stand-in otherwise.

Library code reports progress only through this (the word2vec trainers, the analogy evaluation, the
benchmarks); it never prints. A bar can carry a running loss: ``to(done, loss_sum, terms)`` shows the mean loss
of the terms added since the last call.
"""
from __future__ import annotations


class Progress:
    """A bar over ``total`` units (tqdm's, when enabled), usable as a context manager."""

    def __init__(self, total: int, enabled: bool = True, unit: str = "it", desc: str | None = None,
                 leave: bool = True, unit_scale: bool = False):
        self._bar = None
        self._loss = (0.0, 0.0)
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=int(total), unit=unit, desc=desc, leave=leave, unit_scale=unit_scale,
                             dynamic_ncols=True)

    @property
    def enabled(self) -> bool:
        return self._bar is not None

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(int(n))

    def to(self, done: float, loss_sum: float | None = None, terms: float | None = None) -> None:
        """Move the bar to ``done`` units; with a running (loss_sum, terms), show the recent mean loss."""
        if self._bar is None:
            return
        if loss_sum is not None and terms is not None and terms > self._loss[1]:
            recent = (loss_sum - self._loss[0]) / (terms - self._loss[1])
            self._bar.set_postfix(loss=f"{recent:.4f}", refresh=False)
            self._loss = (loss_sum, terms)
        self._bar.update(int(done) - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""Progress of long calls: a tqdm bar when tqdm is installed (``tqdm.auto``, so
notebooks get a widget), silence otherwise, or the caller's own callback."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def ingest_progress(
    progress: bool | Callable[[int, int, int], None] | None, sample: str
) -> Iterator[Callable[[int, int, int], None] | None]:
    """A callback ``(positions_done, positions_total, patches_stored)`` for an ingest."""
    if callable(progress):
        yield progress
        return
    if not progress:
        yield None
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:
        yield None
        return
    bar = tqdm(desc=f"ingest {sample}", unit="positions", leave=False)
    try:

        def update(done: int, total: int, stored: int) -> None:
            bar.total = total
            bar.n = done
            bar.set_postfix(patches=stored, refresh=False)
            bar.refresh()

        yield update
    finally:
        bar.close()

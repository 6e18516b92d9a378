"""tqdm progress bars on stderr, one per stage, fed by :class:`~backend.job_control.Progress` events."""

from __future__ import annotations

import contextlib
import sys

from .job_control import Progress


@contextlib.contextmanager
def progress_printer(quiet: bool = False):
    """Yield an ``on_progress`` callback that draws a bar per stage (nothing when ``quiet``)."""
    if quiet:
        yield lambda event: None
        return
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def on_progress(event: Progress) -> None:
        bar = bars.get(event.stage)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[event.stage] = tqdm(total=1000, desc=event.stage, file=sys.stderr, leave=True,
                                           bar_format="{desc:>14}: {percentage:3.0f}%|{bar}| {elapsed}")
        bar.n = int(event.fraction * 1000)
        if event.message:
            bar.set_postfix_str(event.message, refresh=False)
        bar.refresh()

    try:
        yield on_progress
    finally:
        for bar in bars.values():
            bar.close()

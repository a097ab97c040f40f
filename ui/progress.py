"""Progress bars for work a page waits on, fed by core's ``progress`` callbacks."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st


def permutation() -> Callable[[int, int, float | None], None]:
    """A bar for permutation importance: columns shuffled so far and the time left, then gone when it is done."""
    bar = st.empty()

    def show(done: int, total: int, seconds_left: float | None) -> None:
        if done >= total:
            bar.empty()
            return
        left = "estimating the time…" if seconds_left is None else f"about {max(1.0, seconds_left):.0f} s left"
        bar.progress(done / max(total, 1), text=f"Shuffling each column: {done} of {total} columns · {left}")

    return show

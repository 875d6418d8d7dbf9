"""One kiwipiepy analyser per process, loaded on first use (about 280 MB resident)."""

import threading
from typing import TYPE_CHECKING

from loguru import logger

if TYPE_CHECKING:
    from kiwipiepy import Kiwi

_kiwi: "Kiwi | None" = None
_lock = threading.Lock()


def shared_kiwi() -> "Kiwi":
    """The process's analyser; names and knowledge share it so the model is resident once."""
    global _kiwi
    if _kiwi is None:
        with _lock:
            if _kiwi is None:
                from kiwipiepy import Kiwi

                logger.info("Loading the Korean morpheme analyser (kiwipiepy)")
                # No typo or multi-word dictionaries: nothing here needs them, and they cost ~190 MB.
                _kiwi = Kiwi(load_typo_dict=False, load_multi_dict=False)
    return _kiwi

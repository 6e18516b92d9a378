"""Model families and how they are obtained (docs/design.md §3).

``mode.py`` says which weights a run uses (``real``, ``tiny``, ``full-random``); ``hub.py`` finds real
weights in the Hugging Face cache or a local folder, offline-first, and turns every failure into exit 4.
One module per family builds it in each mode: ``clipseg.py``, ``sam.py``, ``zero123.py``.
"""

from .mode import ModelMode, resolve_model_mode

__all__ = ["ModelMode", "resolve_model_mode"]

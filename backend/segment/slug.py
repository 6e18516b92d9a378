"""File-name stems for prompts (DESIGN.md §4)."""

from __future__ import annotations

import re

_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def slugify(prompt: str) -> str:
    """Lower-case; every run of non-alphanumerics (ASCII) → "-"; no leading/trailing "-".

    A prompt with no ASCII letters or digits at all (e.g. "猫") becomes "prompt"; callers de-duplicate
    clashing slugs (see unique_slugs).
    """
    slug = _NOT_ALNUM.sub("-", prompt.lower()).strip("-")
    return slug[:80].strip("-") or "prompt"


def unique_slugs(prompts: list[str]) -> list[str]:
    """slugify each prompt; later clashes get "-2", "-3", … so no output file overwrites another."""
    seen: dict[str, int] = {}
    slugs = []
    for prompt in prompts:
        base = slugify(prompt)
        count = seen.get(base, 0) + 1
        seen[base] = count
        slugs.append(base if count == 1 else f"{base}-{count}")
    return slugs

"""File-name stems for prompts (docs/design.md §4)."""

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
    """slugify each prompt; a slug already taken gets the first free "-2", "-3", … so no output file
    overwrites another, even where a prompt's own slug looks like a suffixed one ('cup', 'cup', 'cup-2' →
    cup, cup-2, cup-2-2)."""
    taken: set[str] = set()
    slugs = []
    for prompt in prompts:
        base = slugify(prompt)
        slug, number = base, 1
        while slug in taken:
            number += 1
            slug = f"{base}-{number}"
        taken.add(slug)
        slugs.append(slug)
    return slugs

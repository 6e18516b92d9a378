"""Text that fits: how many pixels a label needs, and wrapping that keeps every line inside the panel.

Widths, at UI scale 1 (Blender multiplies all of them by the scale, so the check holds at any scale):
- the sidebar opens 220 px wide (Blender's UI_SIDEBAR_PANEL_WIDTH); its category tabs take 20 px, the panel
  10 px of margin each side and the layout 8 px more each side, leaving SIDEBAR_TEXT_PX = 164 px for a
  label; one with an icon loses ICON_PX = 20 px of that (144 px);
- the Preferences window opens 680 px wide with a 180 px navigation column (UI_NAVIGATION_REGION_WIDTH),
  so an add-on's preferences get 500 px, about PREFERENCES_TEXT_PX = 460 px of it for text.
Interface text is 11 px at scale 1 (the default "Widget" font style); ``blf`` measures it with the same
font. Where blf cannot measure (no font loaded), an average of 6.5 px per character stands in (Blender's
interface font averages about 5.6 px for lowercase text at 11 px: 6.5 leaves room for capitals).
"""

from __future__ import annotations

SIDEBAR_TEXT_PX = 164
PREFERENCES_TEXT_PX = 460
ICON_PX = 20
BOX_BORDER_PX = 12  # a box's frame and inner margin, both sides together
FONT_PX = 11
FALLBACK_CHAR_PX = 6.5


def text_width(text: str) -> float:
    """Pixels ``text`` takes in a label at UI scale 1."""
    try:
        import blf

        blf.size(0, FONT_PX)
        width, _ = blf.dimensions(0, text)
        if width > 0 or not text:
            return width
    except (ImportError, AttributeError, ValueError):
        pass
    return len(text) * FALLBACK_CHAR_PX


def wrap_to_width(text: str, width_px: float) -> list[str]:
    """Split ``text`` at spaces (and newlines) into lines no wider than ``width_px``; a single word wider
    than that is cut with "…" so nothing is ever truncated by Blender mid-word without a sign."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if line and text_width(candidate) > width_px:
                lines.append(line)
                line = word
            else:
                line = candidate
            while text_width(line) > width_px and len(line) > 1:  # one very long word (a path)
                cut = len(line) - 1
                while cut > 1 and text_width(line[:cut] + "…") > width_px:
                    cut -= 1
                lines.append(line[:cut] + "…")
                line = line[cut:]
        if line:
            lines.append(line)
    return lines


def draw_wrapped(layout, text: str, icon: str = "NONE", width_px: float = SIDEBAR_TEXT_PX) -> None:
    """``text`` as labels that each fit ``width_px``; the first carries ``icon``, the rest are indented to match."""
    usable = width_px - (ICON_PX if icon != "NONE" else 0)
    column = layout.column(align=True)
    for index, line in enumerate(wrap_to_width(text, usable)):
        if icon == "NONE":
            column.label(text=line)
        else:
            column.label(text=line, icon=icon if index == 0 else "BLANK1")

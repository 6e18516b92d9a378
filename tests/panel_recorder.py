"""A stand-in for ``bpy.types.UILayout`` that records what a panel's ``draw`` would show and how wide each
piece may be, so tests can check that no label is cut off (panels/text_fit.py states the widths).

Width model, at UI scale 1: a column or box passes its width on (a box loses 12 px of border); a row
divides its width among its items, an icon-only button (or a row of only those) taking ICON_PX each; ``split(factor)`` gives its first
item ``factor`` of the width and shares the rest. Property widgets are left out: their labels are
Blender's own (the property names), not text this add-on composes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

ICON_PX = 20
BOX_BORDER_PX = 12


@dataclass
class DrawnText:
    text: str
    icon: str
    width_px: float
    kind: str  # "label", "operator", "progress", "menu" (an item of a full-width menu)


@dataclass
class RecordingLayout:
    width_px: float
    kind: str = "column"  # "column" | "row" | "split"
    factor: float = 0.0
    items: list = field(default_factory=list)  # RecordingLayout children and ("text", DrawnText-like tuples)

    # --- containers -----------------------------------------------------------------------------------------
    def column(self, **_):
        return self._child(RecordingLayout(0, "column"))

    def box(self):
        return self._child(RecordingLayout(0, "column", factor=-1))  # factor -1 marks a box

    def row(self, **_):
        return self._child(RecordingLayout(0, "row"))

    def split(self, factor=0.5, **_):
        return self._child(RecordingLayout(0, "split", factor=factor))

    def grid_flow(self, **_):
        return self._child(RecordingLayout(0, "column"))

    def _child(self, child):
        self.items.append(child)
        return child

    # --- things with text -------------------------------------------------------------------------------
    def label(self, text="", icon="NONE", **_):
        self.items.append(("label", text, icon))

    def operator(self, idname, text=None, icon="NONE", **_):
        if text is None:
            text = _operator_label(idname)
        self.items.append(("operator", text, icon))
        return SimpleNamespace()

    def progress(self, factor=0.0, type="BAR", text=""):  # noqa: A002 - Blender's keyword
        self.items.append(("progress", text, "NONE"))

    def prop(self, data=None, name="", text=None, **_):
        """A full-width menu (text="") shows one of its items' names: every item must fit, beside the arrow."""
        prop = data.bl_rna.properties.get(name) if hasattr(data, "bl_rna") else None
        if text == "" and prop is not None and prop.type == "ENUM" and not prop.is_enum_flag:
            column = self._child(RecordingLayout(0, "column"))
            for item in prop.enum_items:
                column.items.append(("menu", item.name, "DROPDOWN"))  # the arrow takes an icon's width
            return
        self.items.append(("prop", "", "NONE"))

    def __getattr__(self, name):  # template_ID, template_icon, separator …: draw nothing we check
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self.items.append(("widget", "", "NONE"))

    # --- widths -----------------------------------------------------------------------------------------
    def texts(self) -> list[DrawnText]:
        """Every text drawn, with the width its widget gets."""
        found: list[DrawnText] = []
        self._collect(self.width_px, found)
        return found

    def _collect(self, width: float, found: list) -> None:
        inner = width - BOX_BORDER_PX if self.factor == -1 else width
        widths = self._item_widths(inner)
        for item, item_width in zip(self.items, widths, strict=True):
            if isinstance(item, RecordingLayout):
                item._collect(item_width, found)
            elif item[1]:
                found.append(DrawnText(item[1], item[2], item_width, item[0]))

    def _item_widths(self, width: float) -> list[float]:
        if self.kind == "column" or not self.items:
            return [width] * len(self.items)
        if self.kind == "split":
            first = width * self.factor
            rest = (width - first) / max(len(self.items) - 1, 1)
            return [first] + [rest] * (len(self.items) - 1)
        fixed = [_icon_width(item) for item in self.items]  # icon-only buttons (or rows of them) keep their width
        flexible = sum(1 for width_px in fixed if width_px is None)
        share = (width - sum(width_px or 0 for width_px in fixed)) / max(flexible, 1)
        return [share if width_px is None else width_px for width_px in fixed]


def _icon_width(item) -> float | None:
    """The width of an icon-only button, or of a row holding only such buttons; None for anything else."""
    if isinstance(item, RecordingLayout):
        widths = [_icon_width(child) for child in item.items]
        return sum(widths) if widths and None not in widths and item.kind == "row" else None
    return ICON_PX if item[0] == "operator" and not item[1] else None


def _operator_label(idname: str) -> str:
    import bpy

    module, _, name = idname.partition(".")
    cls = getattr(bpy.types, f"{module.upper()}_OT_{name}", None)
    return getattr(cls, "bl_label", name) if cls is not None else name


def draw_panel(panel_class, width_px: float, context=None) -> list[DrawnText]:
    """Run ``panel_class.draw`` (and its header) into a recorder ``width_px`` wide; the texts it drew."""
    import bpy

    context = context or bpy.context
    layout = RecordingLayout(width_px)
    fake_panel = SimpleNamespace(layout=layout)
    if hasattr(panel_class, "draw_header"):
        panel_class.draw_header(fake_panel, context)
    panel_class.draw(fake_panel, context)
    return layout.texts()

"""Procedural image textures of eval-recon's built-in objects (numpy only: it also runs under Blender's Python).

Each texture is a pure function of its size: no randomness, no files, no fonts. An image is float32 RGB in
[0, 1] as stored (sRGB-encoded, the values a render under the "Standard" view transform gives back), row 0
at the TOP (v = 1), like a PNG; ``scripts/recon_objects.py`` flips it into Blender's bottom-up pixel order.

Each object's UV layout is written down beside its texture (``*_LAYOUT``) so the builder that assigns UVs
and the painter that fills them agree on one set of numbers.
"""

from __future__ import annotations

import numpy as np

# A 5 × 7 bitmap font for the few characters the textures print ('#' = ink).
GLYPHS = {
    "1": ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "2": (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    "3": ("####.", "....#", "....#", ".###.", "....#", "....#", "####."),
    "4": ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    "5": ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    "6": (".###.", "#....", "#....", "####.", "#...#", "#...#", ".###."),
    "A": (".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "C": (".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."),
    "G": (".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".###."),
    "M": ("#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"),
    "N": ("#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#", "#...#"),
    "U": ("#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
}
GLYPH_W, GLYPH_H = 5, 7


def uv_grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Texel centres as (u [H, W], v [H, W]); row 0 is the top of the image (v near 1)."""
    u = (np.arange(width) + 0.5) / width
    v = 1.0 - (np.arange(height) + 0.5) / height
    return np.meshgrid(u, v)


def text_mask(u: np.ndarray, v: np.ndarray, text: str, box: tuple[float, float, float, float]) -> np.ndarray:
    """Where ``text`` inks the rectangle ``box`` = (u0, v0, u1, v1) of UV space, in the 5 × 7 font (bool, u's shape)."""
    u0, v0, u1, v1 = box
    columns = len(text) * (GLYPH_W + 1) - 1  # one blank column between characters
    col = np.floor((u - u0) / (u1 - u0) * columns).astype(int)
    row = np.floor((v1 - v) / (v1 - v0) * GLYPH_H).astype(int)
    inside = (col >= 0) & (col < columns) & (row >= 0) & (row < GLYPH_H)
    ink = np.zeros(u.shape, dtype=bool)
    for index, char in enumerate(text):
        bitmap = np.array([[c == "#" for c in line] for line in GLYPHS[char]])
        local = col - index * (GLYPH_W + 1)
        here = inside & (local >= 0) & (local < GLYPH_W)
        ink[here] = bitmap[row[here], local[here]]
    return ink


def _paint(image: np.ndarray, mask: np.ndarray, colour: tuple[float, float, float]) -> None:
    image[mask] = colour


# Box -------------------------------------------------------------------------------------------------
# Six faces in a 3 × 2 atlas: face k (0..5 = +x, +y, +z, -x, -y, -z) fills cell (column k % 3, row k // 3 from
# the bottom), inset by BOX_CELL_MARGIN of the cell on every side.
BOX_ATLAS = (3, 2)
BOX_CELL_MARGIN = 0.03
BOX_PALETTES = (((0.9, 0.75, 0.1), (0.1, 0.3, 0.7)), ((0.85, 0.2, 0.2), (0.95, 0.9, 0.8)),
                ((0.1, 0.55, 0.3), (0.95, 0.95, 0.95)), ((0.5, 0.2, 0.6), (0.9, 0.6, 0.1)),
                ((0.15, 0.15, 0.15), (0.3, 0.75, 0.85)), ((0.95, 0.5, 0.55), (0.25, 0.35, 0.2)))


def box_texture(width: int = 768, height: int = 512) -> np.ndarray:
    """Each face: a 4 × 4 checker in its own two colours, a white panel in the middle with the face's digit 1–6."""
    u, v = uv_grid(width, height)
    cols, rows = BOX_ATLAS
    image = np.zeros((height, width, 3), np.float32)
    cell = np.minimum((u * cols).astype(int), cols - 1) + cols * np.minimum((v * rows).astype(int), rows - 1)
    s, t = (u * cols) % 1.0, (v * rows) % 1.0  # position inside the cell
    for face in range(cols * rows):
        here = cell == face
        first, second = BOX_PALETTES[face]
        checker = ((np.floor(s * 4) + np.floor(t * 4)) % 2).astype(bool)
        _paint(image, here & checker, first)
        _paint(image, here & ~checker, second)
        panel = here & (np.abs(s - 0.5) < 0.22) & (np.abs(t - 0.5) < 0.27)
        _paint(image, panel, (0.97, 0.97, 0.97))
        digit_box = ((face % cols + 0.36) / cols, (face // cols + 0.3) / rows,
                     (face % cols + 0.64) / cols, (face // cols + 0.7) / rows)
        _paint(image, here & text_mask(u, v, str(face + 1), digit_box), (0.05, 0.05, 0.1))
    return image


# Can (cylinder with flat caps) ------------------------------------------------------------------------
# Side: u = azimuth / 2π, v = CAN_SIDE_V[0] + height fraction × span. Caps: discs of radius CAN_CAP_RADIUS (in UV)
# around CAN_TOP_CENTRE and CAN_BOTTOM_CENTRE.
CAN_SIDE_V = (0.0, 0.5)
CAN_TOP_CENTRE, CAN_BOTTOM_CENTRE, CAN_CAP_RADIUS = (0.25, 0.75), (0.75, 0.75), 0.23


def can_texture(size: int = 512) -> np.ndarray:
    """Side: red bands at top and bottom, a cream label with 12 blue stripes and "CAN" printed three times.
    Caps: a dark rim ring and concentric rings inside, so the geometric rim is also a colour edge."""
    u, v = uv_grid(size, size)
    image = np.full((size, size, 3), 0.6, np.float32)
    side = v < CAN_SIDE_V[1]
    t = (v - CAN_SIDE_V[0]) / (CAN_SIDE_V[1] - CAN_SIDE_V[0])
    _paint(image, side, (0.95, 0.9, 0.75))
    _paint(image, side & ((u * 12) % 1.0 < 0.12), (0.15, 0.3, 0.75))
    _paint(image, side & ((t < 0.16) | (t > 0.84)), (0.8, 0.1, 0.1))
    for k in range(3):
        box = ((k + 0.2) / 3, CAN_SIDE_V[0] + 0.38 * CAN_SIDE_V[1], (k + 0.8) / 3, CAN_SIDE_V[0] + 0.62 * CAN_SIDE_V[1])
        _paint(image, side & text_mask(u, v, "CAN", box), (0.1, 0.1, 0.1))
    for centre, colours in ((CAN_TOP_CENTRE, ((0.75, 0.75, 0.78), (0.35, 0.6, 0.35))),
                            (CAN_BOTTOM_CENTRE, ((0.55, 0.45, 0.3), (0.9, 0.85, 0.6)))):
        r = np.hypot(u - centre[0], v - centre[1]) / CAN_CAP_RADIUS
        _paint(image, r <= 1.05, colours[0])
        _paint(image, (r < 0.7) & ((r * 5).astype(int) % 2 == 0), colours[1])
        _paint(image, (r > 0.85) & (r <= 1.05), (0.15, 0.15, 0.18))  # the rim ring
    return image


# Bowl -------------------------------------------------------------------------------------------------
# Outer surface: u = azimuth / 2π, v = BOWL_OUTER_V[0] + polar fraction (0 at the bottom, 1 at the rim) × span.
# Inner surface: the same in BOWL_INNER_V. The rim's flat top takes the outer surface's colour at the rim.
BOWL_OUTER_V, BOWL_INNER_V = (0.0, 0.5), (0.5, 1.0)


def bowl_texture(size: int = 512) -> np.ndarray:
    """Outside: 16 alternating petals over a dark foot, a white line under the rim. Inside: concentric rings."""
    u, v = uv_grid(size, size)
    image = np.zeros((size, size, 3), np.float32)
    outer = v < BOWL_OUTER_V[1]
    t = (v - BOWL_OUTER_V[0]) / (BOWL_OUTER_V[1] - BOWL_OUTER_V[0])
    petals = ((u * 16).astype(int) % 2 == 0)
    _paint(image, outer & petals, (0.1, 0.35, 0.6))
    _paint(image, outer & ~petals, (0.9, 0.8, 0.55))
    _paint(image, outer & (t < 0.25), (0.3, 0.15, 0.1))
    _paint(image, outer & (t > 0.88) & (t < 0.93), (0.97, 0.97, 0.97))
    _paint(image, outer & (t >= 0.93), (0.1, 0.35, 0.6))
    inner_t = (v - BOWL_INNER_V[0]) / (BOWL_INNER_V[1] - BOWL_INNER_V[0])
    rings = ((inner_t * 8).astype(int) % 2 == 0)
    _paint(image, ~outer & rings, (0.95, 0.85, 0.4))
    _paint(image, ~outer & ~rings, (0.85, 0.3, 0.15))
    return image


# Mug --------------------------------------------------------------------------------------------------
# Outer wall: u = azimuth / 2π (the handle sits at azimuth 0), v in MUG_OUTER_V by height; inner wall: MUG_INNER_V;
# handle: u = angle along the handle's ring, v in MUG_HANDLE_V by angle around its tube; faces pointing up
# (the rim's top, the floor inside) in the square MUG_UP_SQUARE, down (the base) in MUG_DOWN_SQUARE, mapped
# from the body's footprint.
MUG_OUTER_V, MUG_INNER_V, MUG_HANDLE_V = (0.0, 0.4), (0.4, 0.7), (0.7, 0.85)
MUG_UP_SQUARE, MUG_DOWN_SQUARE = (0.0, 0.85, 0.15), (0.2, 0.85, 0.15)  # (u0, v0, side)


def mug_texture(size: int = 512) -> np.ndarray:
    """Outside: white with two blue lines and "MUG" printed twice (away from the handle). Inside: pale teal.
    Handle: red with white bands. Rim top and floor: dark; base: brown."""
    u, v = uv_grid(size, size)
    image = np.full((size, size, 3), 0.5, np.float32)
    outer = v < MUG_OUTER_V[1]
    t = (v - MUG_OUTER_V[0]) / (MUG_OUTER_V[1] - MUG_OUTER_V[0])
    _paint(image, outer, (0.96, 0.96, 0.93))
    _paint(image, outer & (((t > 0.1) & (t < 0.16)) | ((t > 0.84) & (t < 0.9))), (0.1, 0.25, 0.7))
    for centre in (0.3, 0.7):  # azimuths 108° and 252°: the sides, not the handle at 0°
        box = (centre - 0.08, MUG_OUTER_V[0] + 0.35 * MUG_OUTER_V[1], centre + 0.08, MUG_OUTER_V[0] + 0.65 * MUG_OUTER_V[1])
        _paint(image, outer & text_mask(u, v, "MUG", box), (0.75, 0.1, 0.15))
    _paint(image, (v >= MUG_INNER_V[0]) & (v < MUG_INNER_V[1]), (0.55, 0.8, 0.78))
    handle = (v >= MUG_HANDLE_V[0]) & (v < MUG_HANDLE_V[1])
    _paint(image, handle, (0.8, 0.12, 0.12))
    _paint(image, handle & ((u * 10) % 1.0 < 0.2), (0.97, 0.97, 0.97))
    for (u0, v0, side), colour in ((MUG_UP_SQUARE, (0.2, 0.2, 0.25)), (MUG_DOWN_SQUARE, (0.45, 0.3, 0.15))):
        _paint(image, (u >= u0) & (u < u0 + side) & (v >= v0) & (v < v0 + side), colour)
    return image


TEXTURES = {"box": box_texture, "can": can_texture, "bowl": bowl_texture, "mug": mug_texture}

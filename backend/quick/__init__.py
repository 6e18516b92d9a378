"""The "quick" method: one TripoSR forward pass instead of stage 1 (docs/quick-method.md).

``preprocess`` (TripoSR's input framing), ``field_mesh`` (density on a grid → our marching cubes),
``field_bake`` (texture from the colour field at each texel's surface point), ``config`` (settings and presets),
``pipeline`` (the quick job); for quick+refine, ``gaussian_start`` (stage 1's start from TripoSR's surface) and
``refine`` (its shorter stage-1 settings, argued).
"""

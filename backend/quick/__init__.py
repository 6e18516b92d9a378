"""The "quick" method: one TripoSR forward pass instead of stage 1 (docs/quick-method.md).

``preprocess`` (TripoSR's input framing), ``field_mesh`` (density on a grid → our marching cubes),
``field_bake`` (texture from the colour field at each texel's surface point), ``pipeline`` (the job).
"""

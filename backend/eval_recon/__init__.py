"""Fidelity on ground truth we can make (``python -m backend eval-recon``, docs/design.md §6).

Blender renders a known textured object (``scripts/recon_blender.py``, run in a subprocess: this package
never imports bpy); our Gaussians → mesh → texture machinery rebuilds it from those renders alone; Blender
renders the result at views it never saw; :mod:`.metrics` compares them.
"""

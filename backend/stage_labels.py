"""What each backend stage is called for people: declared once, torch-free and bpy-free.

The worker's progress events carry these labels (backend/worker/serve.py); the add-on's in-process path
and its panel use the same function, and the CLI's progress bar can too. A stage name not listed here is
shown as it is, so a new stage is never hidden, only unpolished until it gets its words.
"""

from __future__ import annotations

STAGE_LABELS: dict[str, str] = {
    "starting": "Starting",
    "download": "Downloading a model",
    "load models": "Loading the models",
    "clipseg": "Finding the object",
    "sam embedding": "Looking at the photo",
    "sam masks": "Cutting out the object",
    "sam3": "Finding the object",
    "write": "Saving the masks",
    "segment": "Finding the object",
    "correct mask": "Correcting the mask",
    "choose instance": "Choosing the object",
    "preprocess": "Preparing the photo",
    "load_guidance": "Loading the shape model",
    "stage1": "Fitting the shape",
    "mesh": "Building the mesh",
    "uv_unwrap": "Unfolding the surface",
    "bake": "Painting the texture",
    "texture": "Refining the texture",
    "export": "Saving the model",
    "load_triposr": "Loading the quick model",
    "triposr": "Guessing the shape",
    "triposr_mesh": "Building the mesh",
}


def stage_label(stage: str) -> str:
    """"object 2 of 3: stage1" → "Object 2 of 3: Fitting the shape"; unknown names stay as they are."""
    prefix, _, name = stage.rpartition(": ")
    label = STAGE_LABELS.get(name, name)
    return f"{prefix[:1].upper()}{prefix[1:]}: {label}" if prefix else label


def clock(seconds: float) -> str:
    """12 → "0:12", 754 → "12:34", 3725 → "1:02:05"."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def step_text(step: int, steps: int) -> str:
    """"Step 3 of 7", or "" where the stages are not counted."""
    return f"Step {step} of {steps}" if steps > 0 and step > 0 else ""


def time_text(elapsed_s: float, eta_s: float | None) -> str:
    """"0:42 so far · 2:10 left" (the time left only once it can be estimated)."""
    spent = f"{clock(elapsed_s)} so far"
    return f"{spent} · {clock(eta_s)} left" if eta_s is not None else spent


def progress_detail(step: int, steps: int, elapsed_s: float, eta_s: float | None) -> str:
    """One line for a status message: "Step 3 of 7 · 0:42 so far · 2:10 left"."""
    return " · ".join(part for part in (step_text(step, steps), time_text(elapsed_s, eta_s)) if part)

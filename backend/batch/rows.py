"""Batch rows: reading the CSV, and the per-row record that goes into ``summary.csv``."""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..choices import DEFAULT_METHOD, DEFAULT_PRESET, PRESETS, TEST_PRESETS, check_method, check_seed, names
from ..errors import BadInputError

PRESET_NAMES = tuple(names(PRESETS + TEST_PRESETS))

SUMMARY_FIELDS = ("row", "image", "prompt", "status", "exit_code", "message", "seconds", "out_dir")
SUMMARY_HEADER = ",".join(SUMMARY_FIELDS)  # how a summary.csv written by this tool starts
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): such text gets a
# leading apostrophe, which spreadsheets show as plain text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class BatchRow:
    """One job: a photo and what to take out of it. ``index`` counts data rows from 1."""

    index: int
    image: str
    prompt: str | None
    preset: str = DEFAULT_PRESET
    seed: int = 0
    method: str = DEFAULT_METHOD  # backend.choices.METHODS

    @property
    def folder_name(self) -> str:
        stem = re.sub(r"[^a-z0-9]+", "-", Path(self.image).stem.lower()).strip("-") or "image"
        return f"{self.index:04d}-{stem}"


@dataclass(frozen=True)
class RowSettings:
    """What every row of one batch is made with, declared once and handed as one value to whatever runs rows
    (this process, a group of rows, a Ray worker).

    models: the model mode (None: ``$IMAGE_TO_3D_MODELS`` or real); device: auto, cpu or cuda; force: redo rows
    already done; compile_vae_encoder: ``GuidanceConfig.compile_vae_encoder`` for every row.
    """

    models: str | None = None
    device: str = "auto"
    force: bool = False
    compile_vae_encoder: bool = False

    def request(self, row: BatchRow, out_dir: Path):
        """The ``api.GenerateRequest`` of ``row`` writing into ``out_dir``."""
        from .. import api

        return api.GenerateRequest(image_path=row.image, prompt=row.prompt, out_dir=str(out_dir), preset=row.preset,
                                   seed=row.seed, method=row.method, models=self.models, device=self.device,
                                   force=self.force, compile_vae_encoder=self.compile_vae_encoder)


@dataclass(frozen=True)
class RowOutcome:
    row: BatchRow
    status: str  # done | failed | skipped (already done)
    exit_code: int
    message: str
    seconds: float
    out_dir: str

    def as_summary(self) -> dict:
        return {"row": self.row.index, "image": _as_text(self.row.image), "prompt": _as_text(self.row.prompt or ""),
                "status": self.status, "exit_code": self.exit_code, "message": _as_text(self.message),
                "seconds": f"{self.seconds:.2f}", "out_dir": _as_text(self.out_dir)}


def _as_text(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def read_rows(csv_path: str | Path) -> list[BatchRow]:
    """Columns: image, prompt, and optionally preset, seed and method; a header row is required.

    Relative image paths are taken relative to the CSV's folder; an empty cell takes the default. The one reader
    of batch CSVs (``batch`` and scripts/batch.py): an unknown preset or method or an unusable seed is bad input
    before any row runs.
    """
    if not os.fspath(csv_path):
        raise BadInputError("no CSV file given (the path is empty)")
    path = Path(csv_path)
    try:
        is_file, exists = path.is_file(), path.exists()
    except OSError as exc:  # ENAMETOOLONG, EACCES on a parent: a path that cannot be read
        raise BadInputError(f"cannot read CSV file {path}: {exc.strerror or exc}") from None
    if not is_file:
        raise BadInputError(f"CSV {'path is not a file' if exists else 'file not found'}: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip().lower() for f in (reader.fieldnames or [])]
            if "image" not in fields:
                raise BadInputError(f"{path}: the header must name an 'image' column (and 'prompt'), got {fields}")
            rows = []
            for i, raw in enumerate(reader, start=1):
                rec = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
                image = rec.get("image", "")
                if image and not Path(image).is_absolute():
                    image = str(path.parent / image)
                where = f"{path}: row {i} (line {reader.line_num})"
                seed_text = rec.get("seed") or "0"
                if not seed_text.lstrip("-").isdigit():
                    raise BadInputError(f"{where} has a seed that is not a whole number: {seed_text!r}")
                try:
                    seed = check_seed(int(seed_text))
                except BadInputError as exc:
                    raise BadInputError(f"{where}: {exc}") from None
                preset = rec.get("preset") or DEFAULT_PRESET
                if preset not in PRESET_NAMES:
                    raise BadInputError(f"{where}: unknown preset {preset!r} (choose {', '.join(PRESET_NAMES)})")
                try:
                    method = check_method(rec.get("method") or DEFAULT_METHOD)
                except BadInputError as exc:
                    raise BadInputError(f"{where}: {exc}") from None
                rows.append(BatchRow(index=i, image=image, prompt=rec.get("prompt") or None, preset=preset,
                                     seed=seed, method=method))
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{path} is not a UTF-8 CSV file") from exc
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit() (131072 characters)
        raise BadInputError(f"{path} is not a readable CSV file: {exc}") from None
    if not rows:
        raise BadInputError(f"{path} has no rows")
    return rows


def check_summary_replaceable(path: Path) -> None:
    """BadInputError (exit 2) when ``path`` exists and is not a summary this tool wrote (a user's own
    summary.csv in --out is never replaced); checked before the first row runs."""
    try:
        if not (path.exists() or path.is_symlink()):
            return
        with open(path, encoding="utf-8", newline="") as fh:
            first = fh.readline(len(SUMMARY_HEADER) + 3).rstrip("\r\n")
    except (OSError, UnicodeDecodeError):
        first = None
    if path.is_symlink() or not path.is_file() or first != SUMMARY_HEADER:
        raise BadInputError(f"{path} exists and was not written by this tool: move it away or choose another --out")


def write_summary(path: Path, outcomes: list[RowOutcome]) -> None:
    import io

    from ..atomic_output import write_bytes_atomic

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS)
    writer.writeheader()
    for outcome in sorted(outcomes, key=lambda o: o.row.index):
        writer.writerow(outcome.as_summary())
    write_bytes_atomic(path, buf.getvalue().encode())

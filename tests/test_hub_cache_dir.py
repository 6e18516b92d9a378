"""The add-on's stdlib answer to "where is the Hugging Face hub cache" (cache_state.hub_cache_dir, read while
Blender draws) against huggingface_hub's own (hub.hf_cache_dir, the folder snapshot_download searches): the
Models section must call a model cached exactly when the backend would find it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# huggingface_hub reads its cache variables once, when huggingface_hub.constants is imported: the child
# reloads that module after setting each case's variables, then asks both functions.
_COMPARE = """
import importlib, json, os, sys
import huggingface_hub.constants as constants
from backend.models.cache_state import hub_cache_dir
from backend.models.hub import hf_cache_dir

answers = []
for case in json.loads(sys.argv[1]):
    for name in ("HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        os.environ.pop(name, None)
    os.environ.update(case)
    importlib.reload(constants)
    answers.append([str(hub_cache_dir()), str(hf_cache_dir())])
print(json.dumps(answers))
"""


def test_stdlib_hub_cache_dir_matches_huggingface_hub(tmp_path):
    home = tmp_path / "home"
    hub, hf_home, xdg = str(tmp_path / "hub"), str(tmp_path / "hf-home"), str(tmp_path / "xdg")
    cases = [
        {},
        {"XDG_CACHE_HOME": xdg},
        {"HF_HOME": hf_home},
        {"HF_HOME": hf_home, "XDG_CACHE_HOME": xdg},
        {"HF_HUB_CACHE": hub},
        {"HF_HUB_CACHE": hub, "HF_HOME": hf_home},
        {"HF_HUB_CACHE": hub, "XDG_CACHE_HOME": xdg},
        {"HF_HUB_CACHE": hub, "HF_HOME": hf_home, "XDG_CACHE_HOME": xdg},
        {"HF_HOME": "~/hf-home"},  # both expand ~
        {"HF_HUB_CACHE": "~/hub"},
    ]
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("HF_", "HUGGINGFACE_")) and key != "XDG_CACHE_HOME"}
    env.update(HOME=str(home), USERPROFILE=str(home))  # the no-variable case falls back to ~/.cache
    done = subprocess.run([sys.executable, "-c", _COMPARE, json.dumps(cases)], env=env, capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    for case, (stdlib, hub_answer) in zip(cases, answers, strict=True):
        assert stdlib == hub_answer, case
    assert answers[0][0] == str(home / ".cache" / "huggingface" / "hub")  # the cases really differ
    assert answers[1][0] == str(Path(xdg) / "huggingface" / "hub")
    assert answers[-1][0] == str(home / "hub")

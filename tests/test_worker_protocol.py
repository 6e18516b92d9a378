"""The worker process (``python -m backend serve``) over real pipes: every request and event, bad input, cancel,
a killed worker, model release. Tiny models on the CPU; one worker serves the module's tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.worker.client import WorkerExited, describe_exit
from backend.worker.messages import (
    PROTOCOL_VERSION,
    Acknowledged,
    CancelRequest,
    CorrectMaskRequest,
    Done,
    ErrorEvent,
    GenerateOutcome,
    GenerateRequest,
    Hello,
    HelloRequest,
    JobSettings,
    ObjectFinished,
    ProgressEvent,
    ReleaseModelsRequest,
    SegmentOutcome,
    SegmentRequest,
    ShutdownRequest,
    decode_request,
    encode,
)
from tests.worker_session import WorkerSession

CPU = JobSettings(device="cpu")
pytestmark = pytest.mark.slow  # real worker processes: each cold start imports torch


@pytest.fixture(scope="module")
def session():
    worker = WorkerSession()
    yield worker
    worker.close()


def _final(events):
    assert events, "no events"
    return events[-1]


def test_hello_at_start_states_versions_and_device(session):
    hello = session.hello
    assert isinstance(hello, Hello) and hello.protocol == PROTOCOL_VERSION and hello.id == ""
    assert hello.python == ".".join(map(str, sys.version_info[:3]))
    assert hello.torch and hello.device == "cpu" and hello.problem == ""
    session.send(HelloRequest("h-1"))
    again = session.wait_for("h-1", lambda e: True)
    assert isinstance(again, Hello) and again.id == "h-1" and again.backend_version == hello.backend_version


@pytest.mark.parametrize("line, expected", [
    ("this is not json", "not JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"type": "teleport", "id": "bad-1"}', "unknown request type 'teleport'"),
    ('{"type": "segment", "id": "bad-2", "prompts": ["a"], "out_dir": "x"}', "missing field 'image_path'"),
    ('{"type": "segment", "id": "bad-3", "image_path": 5, "prompts": ["a"], "out_dir": "x"}', "image_path must be str"),
    ('{"type": "cancel", "id": "bad-4", "job_id": "x", "protocol": 99}', "protocol version 99"),
])
def test_malformed_or_unknown_messages_get_an_error_event_and_the_worker_carries_on(session, line, expected):
    session.send_line(line)
    event = session.next_event(30)
    while isinstance(event, ProgressEvent):  # nothing else is running, but be strict about what we read
        event = session.next_event(30)
    assert isinstance(event, ErrorEvent) and event.exit_code == 2 and expected in event.message
    request_id = json.loads(line).get("id", "") if line.startswith("{") else ""
    assert event.id == request_id
    session.send(HelloRequest("still-alive"))
    assert isinstance(session.wait_for("still-alive", lambda e: True, 30), Hello)


def test_unknown_fields_are_ignored():
    request = decode_request('{"type": "release_models", "id": "r", "colour": "blue"}')
    assert request == ReleaseModelsRequest("r")
    assert decode_request(encode(SegmentRequest("s", "p.png", ("a", "b"), "out", CPU))) == \
        SegmentRequest("s", "p.png", ("a", "b"), "out", CPU)


def test_segment_reports_progress_and_done_with_files(session, small_photo, tmp_path):
    session.send(SegmentRequest("seg-1", str(small_photo), ("a coffee cup", "the saucer"), str(tmp_path / "seg"), CPU))
    events = session.events_until_final("seg-1")
    done = _final(events)
    assert isinstance(done, Done) and isinstance(done.result, SegmentOutcome)
    assert [p.slug for p in done.result.prompts] == ["a-coffee-cup", "the-saucer"]
    for files in done.result.prompts:
        assert all(Path(path).is_file() for path in (files.mask_path, files.cutout_path, files.overlay_path))
    progress = [e for e in events if isinstance(e, ProgressEvent)]
    assert progress and all(1 <= e.step <= e.steps for e in progress)
    fractions = [e.fraction for e in progress]
    assert fractions == sorted(fractions) and 0.0 <= fractions[0] and fractions[-1] <= 1.0
    assert progress[0].label == "Loading the segmentation models" and progress[-1].stage == "write"
    assert all(e.elapsed_s >= 0 for e in progress)


def test_bad_input_in_a_job_is_an_error_event_with_its_exit_code(session, tmp_path):
    session.send(SegmentRequest("seg-bad", str(tmp_path / "missing.png"), ("a cup",), str(tmp_path / "o"), CPU))
    error = _final(session.events_until_final("seg-bad"))
    assert isinstance(error, ErrorEvent) and error.exit_code == 2 and "missing.png" in error.message
    assert "\n" not in error.message


def test_correct_mask_writes_the_three_pngs(session, small_photo, tmp_path):
    session.send(SegmentRequest("seg-2", str(small_photo), ("a coffee cup",), str(tmp_path / "seg"), CPU))
    mask_path = _final(session.events_until_final("seg-2")).result.prompts[0].mask_path
    session.send(CorrectMaskRequest("fix-1", str(small_photo), mask_path, "a coffee cup", ((10.5, 20.5), (50.0, 5.0)),
                                    (1, 0), str(tmp_path / "fixed"), CPU))
    events = session.events_until_final("fix-1")
    done = _final(events)
    assert isinstance(done, Done) and isinstance(done.result, SegmentOutcome)
    assert Path(done.result.prompts[0].mask_path).parent == tmp_path / "fixed"
    assert all(Path(p).is_file() for p in (done.result.prompts[0].mask_path, done.result.prompts[0].overlay_path))
    assert any(isinstance(e, ProgressEvent) and e.label == "Correcting the mask" for e in events)


def test_generate_several_prompts_announces_each_object_then_done(session, small_photo, tmp_path):
    session.send(GenerateRequest("gen-2", str(small_photo), ("a coffee cup", "the saucer"), str(tmp_path / "two"),
                                 preset="smoke", steps=3, settings=CPU))
    events = session.events_until_final("gen-2")
    done = _final(events)
    assert isinstance(done, Done) and isinstance(done.result, GenerateOutcome), done
    finished = [e for e in events if isinstance(e, ObjectFinished)]
    assert [(e.index, e.count, e.prompt) for e in finished] == [(0, 2, "a coffee cup"), (1, 2, "the saucer")]
    assert [o.glb_path for o in done.result.objects] == [e.object.glb_path for e in finished]
    assert all(Path(o.glb_path).is_file() and o.image_size == (64, 48) for o in done.result.objects)
    assert events.index(finished[0]) < events.index(finished[1]) < events.index(done)
    labels = {e.label for e in events if isinstance(e, ProgressEvent)}
    assert "object 2 of 2: Fitting 3D Gaussians" in labels
    assert any(isinstance(e, ProgressEvent) and e.eta_s is not None for e in events)


def test_cancel_mid_stage_ends_the_job_with_130_and_a_second_job_is_refused_meanwhile(session, small_photo, tmp_path):
    session.send(GenerateRequest("gen-long", str(small_photo), ("a coffee cup",), str(tmp_path / "long"),
                                 preset="smoke", steps=2000, settings=CPU))
    session.wait_for("gen-long", lambda e: isinstance(e, ProgressEvent) and e.stage == "stage1" and e.stage_fraction > 0)
    session.send(SegmentRequest("seg-busy", str(small_photo), ("a cup",), str(tmp_path / "busy"), CPU))
    busy = _final(session.events_until_final("seg-busy", timeout=30))
    assert isinstance(busy, ErrorEvent) and busy.exit_code == 2 and "already running (gen-long)" in busy.message
    session.send(ReleaseModelsRequest("rel-busy"))
    assert isinstance(_final(session.events_until_final("rel-busy", timeout=30)), ErrorEvent)

    session.send(CancelRequest("cancel-1", "gen-long"))
    ack = _final(session.events_until_final("cancel-1", timeout=30))
    assert ack.result == Acknowledged("cancelling gen-long")
    ended = _final(session.events_until_final("gen-long", timeout=30))
    assert isinstance(ended, ErrorEvent) and ended.exit_code == 130 and "stage1" in ended.message
    assert not (tmp_path / "long").exists()  # nothing half-written is left
    session.send(CancelRequest("cancel-2", "gen-long"))
    assert "no job" in _final(session.events_until_final("cancel-2", timeout=30)).result.what


def test_models_stay_loaded_between_jobs_unless_asked_and_release_frees_them(session, small_photo, tmp_path):
    session.send(SegmentRequest("seg-keep", str(small_photo), ("a cup",), str(tmp_path / "a"), CPU))
    assert isinstance(_final(session.events_until_final("seg-keep")), Done)
    session.send(ReleaseModelsRequest("rel-1"))
    released = _final(session.events_until_final("rel-1"))
    assert isinstance(released.result, Acknowledged) and released.result.what.startswith("released ")
    assert int(released.result.what.split()[1]) >= 2  # CLIPSeg and SAM were kept after the job

    settings = JobSettings(device="cpu", keep_models_loaded=False)
    session.send(SegmentRequest("seg-free", str(small_photo), ("a cup",), str(tmp_path / "b"), settings))
    assert isinstance(_final(session.events_until_final("seg-free")), Done)
    session.send(ReleaseModelsRequest("rel-2"))
    assert _final(session.events_until_final("rel-2")).result.what == "released 0 model(s)"


def test_worker_killed_mid_job_is_reported_once_in_one_line(small_photo, tmp_path):
    session = WorkerSession()
    try:
        session.send(GenerateRequest("gen-kill", str(small_photo), ("a cup",), str(tmp_path / "k"), preset="smoke",
                                     steps=2000, settings=CPU))
        time.sleep(1.0)  # the job thread is importing the pipeline: mid-job, before any output exists
        os.kill(session.worker.process.pid, signal.SIGKILL)
        exited = _final(session.events_until_final("gen-kill", timeout=30))
        assert isinstance(exited, WorkerExited) and exited.returncode == -signal.SIGKILL
        assert exited.message == describe_exit(-signal.SIGKILL) and "killed" in exited.message
        assert "\n" not in exited.message and not session.worker.alive
        assert not session.worker.send(HelloRequest("after"))
    finally:
        session.close()


def test_stdout_carries_protocol_lines_only(tmp_path):
    """Stray prints (Python or C level) after the transport is made land on stderr, not in the protocol."""
    script = ("import os, sys\n"
              "from backend.worker.transport import stdio_transport\n"
              "from backend.worker.messages import Done, Acknowledged\n"
              "transport = stdio_transport()\n"
              "print('stray print')\n"
              "os.write(1, b'stray C-level write\\n')\n"
              "transport.send(Done('x', Acknowledged('ok')))\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0, run.stderr
    assert [json.loads(line)["type"] for line in run.stdout.splitlines()] == ["done"]
    assert "stray print" in run.stderr and "stray C-level write" in run.stderr


def test_shutdown_answers_then_exits_zero_and_end_of_input_also_ends_it(session):
    """Last in the module: it ends the module's worker."""
    session.send(ShutdownRequest("bye"))
    assert _final(session.events_until_final("bye", timeout=30)).result == Acknowledged("shutting down")
    assert session.worker.process.wait(30) == 0

    third = WorkerSession()
    third.worker.process.stdin.close()
    assert third.worker.process.wait(30) == 0

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

import numpy as np
import pytest

from backend import api
from backend.worker.client import WorkerExited, describe_exit
from backend.worker.messages import (
    PROTOCOL_VERSION,
    Acknowledged,
    CancelRequest,
    ChooseInstanceJob,
    CorrectMaskJob,
    Done,
    ErrorEvent,
    GenerateJob,
    GenerateOutcome,
    Hello,
    HelloRequest,
    JobSettings,
    ObjectFinished,
    ProgressEvent,
    ReleaseModelsRequest,
    SegmentJob,
    SegmentOutcome,
    ShutdownRequest,
    decode_request,
    encode,
    request_fields,
)
from tests.worker_session import WorkerSession

pytestmark = pytest.mark.slow  # real worker processes: each cold start imports torch
TOKEN = "hf_worker_secret"


def segment_job(job_id, photo, prompts, out, settings=JobSettings(), **fields) -> SegmentJob:
    """A segment message carrying backend.api's SegmentRequest (CPU)."""
    request = api.SegmentRequest(str(photo), tuple(prompts), str(out), device="cpu", **fields)
    return SegmentJob(job_id, request_fields(request), settings)


def generate_job(job_id, photo, prompt, out, prompts=(), **fields) -> GenerateJob:
    """A generate message carrying backend.api's GenerateRequest (CPU, smoke preset)."""
    request = api.GenerateRequest(str(photo), prompt, str(out), device="cpu", preset="smoke", **fields)
    return GenerateJob(job_id, request_fields(request), prompts=tuple(prompts))


@pytest.fixture(scope="module")
def session():
    worker = WorkerSession()
    yield worker
    worker.close()


def _assert_stages_follow_the_plan(message, progress) -> None:
    """The stages a job reported are its plan's (backend/generate/stage_costs.py), in the plan's order: a name
    that drifted would leave its stage unweighed in the fraction and the time left."""
    from backend.worker.backend_calls import prepare

    plan = [cost.name for cost in prepare(message).plan]
    position = 0
    for stage in dict.fromkeys(e.stage for e in progress):  # each stage once, in the order first reported
        assert stage in plan[position:], (stage, plan[position:])
        position = plan.index(stage, position)


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
    ('{"type": "segment", "id": "bad-2", "request": {"prompts": ["a"], "out_dir": "x"}}',
     "bad segment request: missing field 'image_path'"),
    ('{"type": "segment", "id": "bad-3", "request": {"image_path": 5, "prompts": ["a"], "out_dir": "x"}}',
     "image_path must be str"),
    ('{"type": "cancel", "id": "bad-4", "job_id": "x", "protocol": 99}', "protocol version 99"),
    ('{"type": "generate", "id": "bad-5"}', "missing field 'request'"),
    ('{"type": "generate", "id": "bad-6", "request": {"image_path": "p.png", "prompt": "a", "out_dir": "x", '
     '"method": "teleport"}}', "unknown method 'teleport'"),
    ('{"type": "segment", "id": "bad-7", "request": {"image_path": "p.png", "prompts": ["a"], "out_dir": "x", '
     '"sam3": {"instance": "2"}}}', "sam3"),
])
def test_malformed_or_unknown_messages_get_an_error_event_and_the_worker_carries_on(session, line, expected):
    session.send_line(line)
    event = session.next_event(30)
    # nothing else is running, but be strict about what we read: progress, or the worker's unsolicited start-up
    # hello when this test runs before the one that reads it (test order is not fixed under pytest-xdist)
    while isinstance(event, ProgressEvent) or (isinstance(event, Hello) and event.id == ""):
        event = session.next_event(30)
    assert isinstance(event, ErrorEvent) and event.exit_code == 2 and expected in event.message
    request_id = json.loads(line).get("id", "") if line.startswith("{") else ""
    assert event.id == request_id
    session.send(HelloRequest("still-alive"))
    assert isinstance(session.wait_for("still-alive", lambda e: True, 30), Hello)


def test_unknown_fields_are_ignored_and_an_api_request_round_trips():
    request = decode_request('{"type": "release_models", "id": "r", "colour": "blue"}')
    assert request == ReleaseModelsRequest("r")
    options = api.Sam3Options(instance="union", boxes=((1.0, 2.0, 30.0, 40.0),), accept_license=True, hf_token=TOKEN)
    sent = generate_job("g", "p.png", "a cup", "out", segmenter="sam3", sam3=options, method="quick", seed=7)
    assert sent.request["sam3"]["boxes"] == [[1.0, 2.0, 30.0, 40.0]]  # a nested object on the pipe
    received = decode_request(encode(sent))
    assert received == sent and TOKEN not in repr(received)  # the token crosses the pipe, never a repr
    from backend.worker.backend_calls import api_request

    rebuilt = api_request(api.GenerateRequest, {**received.request, "colour": "blue"}, "generate")
    assert rebuilt == api.GenerateRequest("p.png", "a cup", "out", device="cpu", preset="smoke", segmenter="sam3",
                                          sam3=options, method="quick", seed=7)
    assert isinstance(rebuilt.sam3, api.Sam3Options)
    assert rebuilt.sam3.hf_token == TOKEN and rebuilt.sam3.boxes == ((1.0, 2.0, 30.0, 40.0),)
    with pytest.raises(ValueError, match="mask_path"):  # an array cannot cross: the mask goes as a file
        request_fields(api.GenerateRequest("p.png", "a", "o", mask=np.zeros((2, 2), bool)))


def test_segment_reports_progress_and_done_with_files(session, small_photo, tmp_path):
    session.send(segment_job("seg-1", small_photo, ("a coffee cup", "the saucer"), tmp_path / "seg"))
    events = session.events_until_final("seg-1")
    done = _final(events)
    assert isinstance(done, Done) and isinstance(done.result, SegmentOutcome)
    assert [p.slug for p in done.result.prompts] == ["a-coffee-cup", "the-saucer"]
    for files in done.result.prompts:
        assert all(Path(path).is_file() for path in (files.mask_path, files.cutout_path, files.overlay_path))
    progress = [e for e in events if isinstance(e, ProgressEvent)]
    assert progress and all(1 <= e.step <= e.steps for e in progress)
    _assert_stages_follow_the_plan(segment_job("seg-1", small_photo, ("a coffee cup", "the saucer"), tmp_path), progress)
    fractions = [e.fraction for e in progress]
    assert fractions == sorted(fractions) and 0.0 <= fractions[0] and fractions[-1] <= 1.0
    assert progress[0].label == "Loading the models" and progress[-1].stage == "write"
    assert all(e.elapsed_s >= 0 for e in progress)


def test_bad_input_in_a_job_is_an_error_event_with_its_exit_code(session, tmp_path):
    session.send(segment_job("seg-bad", tmp_path / "missing.png", ("a cup",), tmp_path / "o"))
    error = _final(session.events_until_final("seg-bad"))
    assert isinstance(error, ErrorEvent) and error.exit_code == 2 and "missing.png" in error.message
    assert "\n" not in error.message


def test_correct_mask_writes_the_three_pngs(session, small_photo, tmp_path):
    session.send(segment_job("seg-2", small_photo, ("a coffee cup",), tmp_path / "seg"))
    mask_path = _final(session.events_until_final("seg-2")).result.prompts[0].mask_path
    request = api.CorrectMaskRequest(str(small_photo), mask_path, ((10.5, 20.5), (50.0, 5.0)), (1, 0),
                                     str(tmp_path / "fixed"), prompt="a coffee cup", device="cpu")
    session.send(CorrectMaskJob("fix-1", request_fields(request)))
    events = session.events_until_final("fix-1")
    done = _final(events)
    assert isinstance(done, Done) and isinstance(done.result, SegmentOutcome)
    assert Path(done.result.prompts[0].mask_path).parent == tmp_path / "fixed"
    assert all(Path(p).is_file() for p in (done.result.prompts[0].mask_path, done.result.prompts[0].overlay_path))
    assert any(isinstance(e, ProgressEvent) and e.label == "Correcting the mask" for e in events)


def test_generate_several_prompts_announces_each_object_then_done(session, small_photo, tmp_path):
    session.send(generate_job("gen-2", small_photo, "a coffee cup", tmp_path / "two", ("a coffee cup", "the saucer"),
                              steps=3))
    events = session.events_until_final("gen-2")
    done = _final(events)
    assert isinstance(done, Done) and isinstance(done.result, GenerateOutcome), done
    finished = [e for e in events if isinstance(e, ObjectFinished)]
    assert [(e.index, e.count, e.prompt) for e in finished] == [(0, 2, "a coffee cup"), (1, 2, "the saucer")]
    assert [o.glb_path for o in done.result.objects] == [e.object.glb_path for e in finished]
    assert all(Path(o.glb_path).is_file() and o.image_size == (64, 48) for o in done.result.objects)
    assert events.index(finished[0]) < events.index(finished[1]) < events.index(done)
    labels = {e.label for e in events if isinstance(e, ProgressEvent)}
    assert "Object 2 of 2: Fitting the shape" in labels
    _assert_stages_follow_the_plan(generate_job("gen-2", small_photo, "a coffee cup", tmp_path / "two",
                                                ("a coffee cup", "the saucer"), steps=3),
                                   [e for e in events if isinstance(e, ProgressEvent)])
    assert any(isinstance(e, ProgressEvent) and e.eta_s is not None for e in events)


def test_cancel_mid_stage_ends_the_job_with_130_and_a_second_job_is_refused_meanwhile(session, small_photo, tmp_path):
    session.send(generate_job("gen-long", small_photo, "a coffee cup", tmp_path / "long", steps=2000))
    session.wait_for("gen-long", lambda e: isinstance(e, ProgressEvent) and e.stage == "stage1" and e.stage_fraction > 0)
    session.send(segment_job("seg-busy", small_photo, ("a cup",), tmp_path / "busy"))
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
    session.send(segment_job("seg-keep", small_photo, ("a cup",), tmp_path / "a"))
    assert isinstance(_final(session.events_until_final("seg-keep")), Done)
    session.send(ReleaseModelsRequest("rel-1"))
    released = _final(session.events_until_final("rel-1"))
    assert isinstance(released.result, Acknowledged) and released.result.what.startswith("released ")
    assert int(released.result.what.split()[1]) >= 2  # CLIPSeg and SAM were kept after the job

    session.send(segment_job("seg-free", small_photo, ("a cup",), tmp_path / "b", JobSettings(keep_models_loaded=False)))
    assert isinstance(_final(session.events_until_final("seg-free")), Done)
    session.send(ReleaseModelsRequest("rel-2"))
    assert _final(session.events_until_final("rel-2")).result.what == "released 0 model(s)"


def test_sam3_segment_lists_instances_and_choose_instance_makes_one_the_mask(session, small_photo, tmp_path):
    session.send(segment_job("sam3-1", small_photo, ("a coffee cup",), tmp_path / "seg", segmenter="sam3",
                             sam3=api.Sam3Options(accept_license=True, hf_token=TOKEN)))
    events = session.events_until_final("sam3-1")
    done = _final(events)
    assert isinstance(done, Done) and isinstance(done.result, SegmentOutcome), done
    instances = done.result.prompts[0].instances
    assert [i.rank for i in instances] == list(range(1, len(instances) + 1)) and len(instances) >= 2
    assert all(Path(i.mask_path).is_file() for i in instances)
    assert any(isinstance(e, ProgressEvent) and e.label == "Finding the object" and e.stage == "sam3" for e in events)

    chosen = api.ChooseInstanceRequest(str(small_photo), tuple(i.mask_path for i in instances), "2",
                                       str(tmp_path / "chosen"), prompt="a coffee cup")
    session.send(ChooseInstanceJob("pick-2", request_fields(chosen)))
    picked = _final(session.events_until_final("pick-2"))
    assert isinstance(picked, Done) and isinstance(picked.result, SegmentOutcome), picked
    from backend.segment.outputs import read_mask_png

    np.testing.assert_array_equal(read_mask_png(picked.result.prompts[0].mask_path),
                                  read_mask_png(instances[1].mask_path))


def test_generate_quick_method_through_the_worker(session, small_photo, tmp_path):
    session.send(generate_job("quick-1", small_photo, "a coffee cup", tmp_path / "quick", method="quick", seed=3))
    events = session.events_until_final("quick-1")
    done = _final(events)
    assert isinstance(done, Done) and isinstance(done.result, GenerateOutcome), done
    made = done.result.objects[0]
    assert Path(made.glb_path).is_file() and made.ply_path is None  # no Gaussians in the quick method
    job = json.loads(Path(made.job_json_path).read_text(encoding="utf-8"))
    assert job["method"] == "quick" and job["seed"] == 3
    assert any(isinstance(e, ProgressEvent) and e.label == "Guessing the shape" for e in events)
    _assert_stages_follow_the_plan(generate_job("quick-1", small_photo, "a coffee cup", tmp_path / "quick",
                                                method="quick", seed=3),
                                   [e for e in events if isinstance(e, ProgressEvent)])


def test_worker_killed_mid_job_is_reported_once_in_one_line(small_photo, tmp_path):
    session = WorkerSession()
    try:
        session.send(generate_job("gen-kill", small_photo, "a cup", tmp_path / "k", steps=2000))
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


def test_download_model_job_checks_its_request_in_the_worker(session):
    from backend.worker.messages import DownloadModelJob

    session.send(DownloadModelJob("dl-bad", {"key": "no-such-model"}))
    error = _final(session.events_until_final("dl-bad"))
    assert isinstance(error, ErrorEvent) and error.exit_code == 2 and "unknown model 'no-such-model'" in error.message
    session.send(DownloadModelJob("dl-sam3", {"key": "sam3", "accept_sam3_license": False}))
    error = _final(session.events_until_final("dl-sam3"))
    assert isinstance(error, ErrorEvent) and error.exit_code == 2 and "licence" in error.message


def test_shutdown_answers_then_exits_zero_and_end_of_input_also_ends_it(session):
    """Last in the module: it ends the module's worker."""
    session.send(ShutdownRequest("bye"))
    assert _final(session.events_until_final("bye", timeout=30)).result == Acknowledged("shutting down")
    assert session.worker.process.wait(30) == 0

    third = WorkerSession()
    third.worker.process.stdin.close()
    assert third.worker.process.wait(30) == 0


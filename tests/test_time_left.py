"""The worker's job fraction and time left (backend/worker/time_left.py), driven by synthetic progress events on a
fake clock: no model runs. A synthetic job spends ``seconds_per_work`` × each stage's planned work, so the true
time left is known at every event."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from backend.generate.stage_costs import REFERENCE, StageCost, generate_costs, segment_costs
from backend.job_control import Progress
from backend.worker.messages import GenerateJob, ProgressEvent, request_fields
from backend.worker.serve import ProgressTracker
from backend.worker.time_left import MIN_STEPS, TimeLeftEstimator


@dataclass(frozen=True)
class Event:
    time: float
    stage: str
    fraction: float


def synthetic_job(plan: tuple[StageCost, ...], seconds_per_work: float, cached: frozenset[str] = frozenset(),
                  skipped: frozenset[str] = frozenset(), start_s: float = 0.5, load_s: float = 3.0,
                  init_s: float = 0.0, slow: dict[str, float] | None = None) -> list[Event]:
    """The events a job with that plan reports: a cached stage arrives complete, a skipped one never reports, a
    model load takes ``load_s``, a stage with steps reports each step (after ``init_s`` of setting up), others
    report 0, 0.5 and 1. ``slow`` multiplies a stage's time (a device whose ratios differ from the model)."""
    slow = slow or {}
    events, now = [], start_s
    for cost in plan:
        if cost.name in skipped:
            continue
        if cost.name in cached:
            events.append(Event(now, cost.name, 1.0))
            continue
        seconds = cost.work * seconds_per_work * slow.get(cost.name, 1.0)
        events.append(Event(now, cost.name, 0.0))
        if not cost.timed:
            now += load_s
            events.append(Event(now, cost.name, 1.0))
        elif cost.steps:
            now += init_s
            for step in range(1, cost.steps + 1):
                now += seconds / cost.steps
                events.append(Event(now, cost.name, step / cost.steps))
        else:
            for fraction in (0.5, 1.0):
                now += seconds / 2
                events.append(Event(now, cost.name, fraction))
    return events


def estimates(plan, events):
    estimator = TimeLeftEstimator(plan)
    return [estimator.observe(event.stage, event.fraction, event.time) for event in events]


# The job the issue saw in Blender: a Generate after a Segment, standard preset with 2000 stage-1 steps.
SEGMENTED_PLAN = (*segment_costs("clipseg-sam", "fast"), *generate_costs("dreamgaussian", "standard", 2000))
CPU_SECONDS_PER_WORK = 60.0  # a CPU 60 times slower than the H200 in every stage: a stage-1 step ≈ 1 s


def test_cached_first_stages_then_a_long_stage_1_give_the_true_time_left():
    cached = frozenset({"segment"})  # the mask came from the Segment job's cache
    skipped = frozenset({"load models", "clipseg", "sam embedding"})
    events = synthetic_job(SEGMENTED_PLAN, CPU_SECONDS_PER_WORK, cached, skipped, load_s=0.2)
    end = events[-1].time
    results = estimates(SEGMENTED_PLAN, events)
    stage1 = [i for i, event in enumerate(events) if event.stage == "stage1"]
    # stage 1's start and its first steps: its rate is measured from step 1 on, over MIN_STEPS steps
    assert all(results[i].eta_s is None for i in stage1[:MIN_STEPS + 1])
    for i in stage1[MIN_STEPS + 1:]:
        true_left = end - events[i].time
        assert results[i].eta_s == pytest.approx(true_left, rel=0.02), (events[i], true_left)
    # the fraction at stage 1's start is the cached and skipped stages' small share, not 3 of 13 stages
    assert results[stage1[0]].fraction < 0.01
    assert results[-1].fraction == 1.0 and results[-1].eta_s == pytest.approx(0.0, abs=1e-9)


def test_the_old_formula_was_wrong_on_that_job_and_the_new_one_is_not():
    """What the issue saw: elapsed × (1 − fraction) / fraction with 13 equal stages said seconds where the truth
    was half an hour."""
    events = synthetic_job(SEGMENTED_PLAN, CPU_SECONDS_PER_WORK, frozenset({"segment"}),
                           frozenset({"load models", "clipseg", "sam embedding"}), load_s=0.2)
    start_of_stage1 = next(i for i, event in enumerate(events) if event.stage == "stage1") + MIN_STEPS + 1
    event = events[start_of_stage1]
    equal_fraction = (SEGMENTED_PLAN.index(next(c for c in SEGMENTED_PLAN if c.name == "stage1"))
                      + event.fraction) / len(SEGMENTED_PLAN)
    old = event.time * (1 - equal_fraction) / equal_fraction
    true_left = events[-1].time - event.time
    assert old < 0.01 * true_left  # seconds against half an hour
    assert estimates(SEGMENTED_PLAN, events)[start_of_stage1].eta_s == pytest.approx(true_left, rel=0.02)


@pytest.mark.parametrize("method, preset", [("dreamgaussian", "standard"), ("dreamgaussian", "preview"),
                                            ("quick+refine", "draft"), ("quick", "standard")])
@pytest.mark.parametrize("set_up_s", [0.0, 10.0])
def test_estimate_falls_steadily_on_a_job_with_constant_costs(method, preset, set_up_s):
    """Constant per-step costs; with ``set_up_s`` each stage with steps also spends that long before its first
    step (time the cost model does not know of) and each model load 20 s."""
    plan = (*segment_costs("clipseg-sam", "fast"), *generate_costs(method, preset, None))
    events = synthetic_job(plan, CPU_SECONDS_PER_WORK, init_s=set_up_s, load_s=20.0 if set_up_s else 3.0)
    given = [(event, result.eta_s) for event, result in zip(events, estimates(plan, events), strict=True)
             if result.eta_s is not None]
    assert given, "never an estimate"
    for (earlier, before), (later, after) in zip(given, given[1:], strict=False):
        # never up by more than a trace (the 48 s → 290 s within one stage)
        assert after <= before * 1.02 + 1e-6, (earlier, before, later, after)
    end = events[-1].time
    for event, eta in given:
        if not set_up_s:
            assert eta == pytest.approx(end - event.time, rel=0.15, abs=1.0), event


def test_no_estimate_before_there_is_enough_to_go_by():
    plan = generate_costs("dreamgaussian", "standard", None)
    estimator = TimeLeftEstimator(plan)
    assert estimator.observe("preprocess", 0.0, 0.0).eta_s is None
    assert estimator.observe("preprocess", 1.0, 0.1).eta_s is None  # 0.1 % of the work: too little
    assert estimator.observe("load_guidance", 0.0, 0.1).eta_s is None
    assert estimator.observe("stage1", 0.0, 5.0).eta_s is None
    for step in range(1, MIN_STEPS + 1):  # the first step ends the set-up; MIN_STEPS more give the step rate
        assert estimator.observe("stage1", step / 500, 5.0 + step).eta_s is None
    assert estimator.observe("stage1", (MIN_STEPS + 1) / 500, 6.0 + MIN_STEPS).eta_s is not None
    # a method without steps: an estimate once 5 % of its work was measured (half of TripoSR's pass is less,
    # all of it more)
    quick = generate_costs("quick", "standard", None)
    events = synthetic_job(quick, CPU_SECONDS_PER_WORK)
    results = estimates(quick, events)
    first = next(i for i, result in enumerate(results) if result.eta_s is not None)
    assert (events[first].stage, events[first].fraction) == ("triposr", 1.0)
    assert all(result.eta_s is not None for result in results[first:])


@pytest.mark.parametrize("stage, steps", [("stage1", 2000), ("texture", 50)])
def test_never_less_than_the_current_stage_steps_at_their_observed_rate(stage, steps):
    """The stage ran 20 times slower than the cost model says, so the pace of the stages before it is no reason
    to finish it faster than its own steps go: that floor holds from its second step on (stage 2 starts with
    an estimate carried over from the stages before it, stage 1 waits for MIN_STEPS of its steps)."""
    plan = (*segment_costs("clipseg-sam", "fast"), *generate_costs("dreamgaussian", "standard", 2000))
    events = synthetic_job(plan, CPU_SECONDS_PER_WORK, slow={stage: 20.0})
    estimator = TimeLeftEstimator(plan)
    first_step, checked = 0.0, 0
    for event in events:
        result = estimator.observe(event.stage, event.fraction, event.time)
        if event.stage != stage:
            continue
        done = round(event.fraction * steps)
        if result.eta_s is not None and 1 < done < steps:  # its steps' rate from step 1 on
            step_s = (event.time - first_step) / (done - 1)
            assert result.eta_s >= (steps - done) * step_s - 1e-6
            checked += 1
        first_step = event.time if done == 1 else first_step
    assert checked == steps - 2 - (MIN_STEPS - 1) * (stage == "stage1")


def test_a_cached_stage_1_counts_as_done_but_not_as_pace():
    plan = generate_costs("dreamgaussian", "standard", None)
    events = synthetic_job(plan, CPU_SECONDS_PER_WORK, cached=frozenset({"stage1"}))
    results = estimates(plan, events)
    mesh_start = next(i for i, event in enumerate(events) if event.stage == "mesh")
    assert results[mesh_start].fraction > 0.6  # stage 1's share is done
    end = events[-1].time
    for event, result in zip(events[mesh_start:], results[mesh_start:], strict=True):
        if result.eta_s is not None:  # the free stage 1 did not make the job look 60 % done in no time
            assert result.eta_s == pytest.approx(end - event.time, rel=0.15, abs=1.0), event


def test_a_download_in_the_middle_does_not_count_as_pace():
    plan = generate_costs("dreamgaussian", "standard", 100)
    estimator = TimeLeftEstimator(plan)
    estimator.observe("preprocess", 0.0, 0.0)
    estimator.observe("preprocess", 1.0, 0.6)
    estimator.observe("load_guidance", 0.0, 0.6)
    estimator.observe("download", 0.0, 0.6)
    estimator.observe("download", 1.0, 600.6)  # ten minutes of downloading Zero123
    estimator.observe("load_guidance", 1.0, 610.6)
    estimator.observe("stage1", 0.0, 610.6)
    step_s = 1.0
    result = None
    for step in range(1, 11):
        result = estimator.observe("stage1", step / 100, 610.6 + step * step_s)
    later = sum(cost.work for cost in plan if cost.name not in ("preprocess", "load_guidance", "stage1"))
    stage1_work = next(cost.work for cost in plan if cost.name == "stage1")
    true_left = 90 * step_s + later * (100 * step_s / stage1_work)
    assert result.eta_s == pytest.approx(true_left, rel=0.05)


def test_the_worker_sends_weighted_fractions_and_the_estimate_on_its_own_clock():
    """ProgressTracker with a fake clock: every event is seen by the estimator, throttled ones too."""
    from backend import api
    from backend.worker.backend_calls import prepare

    request = api.GenerateRequest("photo.png", "a cup", "out", preset="standard", steps=2000)
    prepared = prepare(GenerateJob("g1", request_fields(request)))
    assert [cost.name for cost in prepared.plan][:5] == ["load models", "clipseg", "sam embedding", "segment",
                                                         "preprocess"]
    sent: list[ProgressEvent] = []
    now = [100.0]
    tracker = ProgressTracker("g1", prepared.plan, sent.append, clock=lambda: now[0])
    events = synthetic_job(prepared.plan, CPU_SECONDS_PER_WORK, frozenset({"segment"}),
                           frozenset({"load models", "clipseg", "sam embedding"}), start_s=100.5, load_s=0.2)
    for event in events:
        now[0] = event.time
        tracker.on_progress(Progress(event.stage, event.fraction))
    assert sent[0].elapsed_s == pytest.approx(0.5) and sent[0].eta_s is None
    fractions = [event.fraction for event in sent]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    in_stage1 = [event for event in sent if event.stage == "stage1" and event.eta_s is not None]
    end = events[-1].time - 100.0
    assert in_stage1 and all(event.eta_s == pytest.approx(end - event.elapsed_s, rel=0.02) for event in in_stage1)
    assert all(event.steps == len(prepared.plan) for event in sent)


def test_quick_plan_is_its_h200_measurement_at_the_standard_preset_and_scales_with_the_work():
    """The quick method's weights are the stage times measured at the standard preset (docs/quick-method.md);
    a smaller preset scales each by the work it asks for (grid cells, faces, texels)."""
    standard = {cost.name: cost.work for cost in generate_costs("quick", "standard", None)}
    assert standard == {"load_triposr": 0.0, "preprocess": REFERENCE.preprocess, "triposr": REFERENCE.triposr,
                        "mesh": REFERENCE.triposr_mesh_at_256, "uv_unwrap": REFERENCE.triposr_uv_unwrap,
                        "bake": REFERENCE.triposr_bake_at_1024, "export": REFERENCE.triposr_export}
    assert sum(standard.values()) < 1.39  # the measured warm job, which also holds what no stage reports
    draft = {cost.name: cost.work for cost in generate_costs("quick", "draft", None)}  # 128³, 20k faces, 512²
    assert draft["triposr"] == standard["triposr"]
    assert draft["mesh"] == pytest.approx(standard["mesh"] / 8)
    assert draft["uv_unwrap"] == pytest.approx(standard["uv_unwrap"] * 0.4)
    assert draft["export"] == pytest.approx(standard["export"] * 0.4)
    assert draft["bake"] == pytest.approx(standard["bake"] / 4)

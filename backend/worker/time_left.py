"""A job's completion and time left, from its stages' progress events and its plan (backend/generate/stage_costs.py).

Why not ``elapsed × (1 − fraction) / fraction``: stages differ in length by a factor of hundreds, and stages
whose result came from the cache finish at once, so that formula said "0:01 left" at the start of a
2000-step stage 1 and grew from 48 s to 290 s while one stage ran. Instead:

- the job's ``fraction`` weighs each stage by its expected work;
- the pace (seconds per unit of work) is measured only on work this job really did: a stage that arrives
  complete (its result came from the cache) or is passed over, a stage not in the plan (a model download has
  its own progress) and model loading count neither time nor work;
- the stage running now is finished at its own observed step rate (from its first step on: its set-up is
  not a step), the stages after it at the job's pace;
- there is no estimate until there is enough to go by: ``MIN_STEPS`` steps of the running stage where it
  counts steps, or, while no long stage with steps lies ahead (``LONG_STAGE_SHARE``), ``MIN_WORK_FRACTION``
  of the job's work measured; from then on a stage's first steps are estimated at the job's pace, but never
  as less than its steps left at the rate they have shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..generate.stage_costs import StageCost

MIN_STEPS = 3  # steps of the current stage before its step rate is trusted
MIN_WORK_FRACTION = 0.05  # or this share of the job's (timed) work measured, for stages without steps
LONG_STAGE_SHARE = 0.25  # a stage with steps and this share of the job's work is waited for: its own rate decides


@dataclass(frozen=True)
class JobEstimate:
    fraction: float  # the whole job's completion in [0, 1], stages weighed by their expected work
    eta_s: float | None  # seconds left; None until there is enough to go by


@dataclass
class _StageRecord:
    cost: StageCost
    fraction: float = 0.0
    measured_s: float = 0.0  # time spent in it while it was the stage running
    free: bool = False  # its result came from the cache, or it was passed over: no pace to learn from
    first_step: tuple[float, float] | None = None  # (clock, fraction) of its first event past 0: after set-up


@dataclass
class TimeLeftEstimator:
    """Feed it every progress event (``observe``) with the clock's reading; it answers with a JobEstimate."""

    plan: tuple[StageCost, ...]
    records: list[_StageRecord] = field(default_factory=list)  # one per planned stage reached, in plan order
    extra: str = ""  # a stage not in the plan running now (its time is not the job's pace)
    last_time: float | None = None
    best_fraction: float = 0.0
    estimating: bool = False  # once there was enough to go by, the job's pace carries over stage changes

    @property
    def total_work(self) -> float:
        return sum(cost.work for cost in self.plan)

    def observe(self, stage: str, stage_fraction: float, now: float) -> JobEstimate:
        self._close_interval(now)
        position = self._position_of(stage)
        if position is None:
            self.extra = stage
        else:
            self.extra = ""
            self._advance_to(position, stage_fraction)
            current = self.records[-1]
            current.fraction = max(current.fraction, stage_fraction)
            if current.first_step is None and 0.0 < stage_fraction < 1.0:
                current.first_step = (now, stage_fraction)
        self.best_fraction = max(self.best_fraction, self._fraction())
        return JobEstimate(self.best_fraction, self._eta(now))

    def _close_interval(self, now: float) -> None:
        """The time since the last event belongs to the stage that was running."""
        if self.last_time is not None and self.records and not self.extra:
            self.records[-1].measured_s += now - self.last_time
        self.last_time = now

    def _position_of(self, stage: str) -> int | None:
        """The plan index of ``stage``: the current one, or the next of that name (a name may repeat)."""
        if self.records and self.records[-1].cost.name == stage:
            return len(self.records) - 1
        for index in range(len(self.records), len(self.plan)):
            if self.plan[index].name == stage:
                return index
        return None

    def _advance_to(self, position: int, stage_fraction: float) -> None:
        if position < len(self.records):
            return
        if self.records:
            self.records[-1].fraction = 1.0  # a later stage began: this one is done
        while len(self.records) < position:  # passed over: nothing to do for them in this job
            self.records.append(_StageRecord(self.plan[len(self.records)], fraction=1.0, free=True))
        self.records.append(_StageRecord(self.plan[position], free=stage_fraction >= 1.0))

    def _fraction(self) -> float:
        total = self.total_work
        if not self.records:
            return 0.0
        if total <= 0:  # nothing weighed: count stages
            return min(1.0, (len(self.records) - 1 + self.records[-1].fraction) / len(self.plan))
        return min(1.0, sum(record.cost.work * record.fraction for record in self.records) / total)

    def _measured(self) -> list[_StageRecord]:
        return [record for record in self.records if record.cost.timed and not record.free and record.cost.work > 0]

    def _eta(self, now: float) -> float | None:
        if not self.records:
            return None
        current = self.records[-1]
        measured = self._measured()
        work_done = sum(record.cost.work * record.fraction for record in measured)
        seconds = sum(record.measured_s for record in measured)
        pace = seconds / work_done if work_done > 0 and seconds > 0 else None  # seconds per unit of work
        step_rate, steps_measured = self._step_rate(current, now)  # seconds per unit of the stage's fraction
        trusted = step_rate is not None and steps_measured >= MIN_STEPS
        timed_work = sum(cost.work for cost in self.plan if cost.timed)
        # The first estimate waits for a long stage with steps (stage 1) to show its own rate: the earlier stages
        # say little about it (its set-up alone can last as long as they did); without one, for
        # MIN_WORK_FRACTION of the work measured.
        long_ahead = any(cost.steps > 0 and cost.work >= LONG_STAGE_SHARE * timed_work
                         for cost in self.plan[len(self.records) - 1:])
        self.estimating = self.estimating or trusted or (
            pace is not None and work_done >= MIN_WORK_FRACTION * timed_work and not long_ahead)
        if not self.estimating or (not trusted and pace is None):
            return None
        later_work = sum(cost.work for cost in self.plan[len(self.records):])
        if trusted:
            current_left = step_rate * (1.0 - current.fraction)
        else:
            current_left = pace * current.cost.work * (1.0 - current.fraction)
            if step_rate is not None:  # never less than the steps left at the rate seen so far
                current_left = max(current_left, step_rate * (1.0 - current.fraction))
        if later_work > 0 and pace is None:
            return None
        return current_left + (pace or 0.0) * later_work

    def _step_rate(self, record: _StageRecord, now: float) -> tuple[float | None, float]:
        """Seconds per unit of the stage's own fraction, measured from its first step on (its set-up is not a
        step), and over how many steps it was measured; (None, 0) where it counts no steps or none were seen."""
        if self.extra or record.free or record.cost.steps <= 0 or record.first_step is None:
            return None, 0.0
        first_time, first_fraction = record.first_step
        stepped = record.fraction - first_fraction
        if stepped <= 0 or now <= first_time:
            return None, 0.0
        return (now - first_time) / stepped, stepped * record.cost.steps

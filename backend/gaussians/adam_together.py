"""One Adam step for several objects' optimisers at once (batch rows fitted together, ``backend.stage1``).

Each object keeps its own ``torch.optim.Adam`` (density control replaces its parameters and moments, a row fails
or is cancelled alone), but stepping them one by one costs one fused kernel and the optimiser's Python per
parameter group: five groups a row, forty for a group of eight rows, a few milliseconds of host time per stage-1
step on a GPU that waits for it. :func:`step_adams_together` gathers every group's parameters, gradients and
moments across the optimisers and makes one call of ``torch.optim.adam.adam`` (PyTorch's functional Adam, the
same arithmetic ``Adam.step`` runs) per set of equal hyper-parameters: five calls for a batch whose rows share a
learning-rate schedule, whatever the row count. The moments and step counts stay in each optimiser's own state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.optim.adam import adam

# Group settings this module reproduces as ``Adam.step`` does; an optimiser with any other is stepped by its own
# ``step()`` (nothing here makes one, but a caller might).
_SUPPORTED = {"amsgrad": False, "differentiable": False, "capturable": False, "maximize": False,
              "decoupled_weight_decay": False}


@dataclass
class _SharedCall:
    """The lists one functional ``adam`` call takes, for groups whose hyper-parameters are equal."""

    params: list[Tensor] = field(default_factory=list)
    grads: list[Tensor] = field(default_factory=list)
    exp_avgs: list[Tensor] = field(default_factory=list)
    exp_avg_sqs: list[Tensor] = field(default_factory=list)
    state_steps: list[Tensor] = field(default_factory=list)


def step_adams_together(optimizers: Sequence[torch.optim.Adam]) -> None:
    """``optimizer.step()`` for each of ``optimizers``, with the parameter groups of equal learning rate, betas,
    eps, weight decay and implementation (fused / foreach) stepped in one call of the functional Adam."""
    calls: dict[tuple, _SharedCall] = {}
    for optimizer in optimizers:
        if not all(group.get(name, default) == default for group in optimizer.param_groups
                   for name, default in _SUPPORTED.items()):
            optimizer.step()
            continue
        for group in optimizer.param_groups:
            if torch.is_tensor(group["lr"]):  # a tensor rate cannot be a dictionary key; never made here
                raise TypeError("step_adams_together needs float learning rates")
            key = (group["lr"], *group["betas"], group["eps"], group["weight_decay"], group["fused"],
                   group["foreach"])
            call = calls.setdefault(key, _SharedCall())
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = optimizer.state[param]
                if not state:
                    _initial_state(state, param, fused=bool(group["fused"]))
                call.params.append(param)
                call.grads.append(param.grad)
                call.exp_avgs.append(state["exp_avg"])
                call.exp_avg_sqs.append(state["exp_avg_sq"])
                call.state_steps.append(state["step"])
    with torch.no_grad():
        for (lr, beta1, beta2, eps, weight_decay, fused, foreach), call in calls.items():
            if call.params:
                adam(call.params, call.grads, call.exp_avgs, call.exp_avg_sqs, [], call.state_steps,
                     foreach=foreach, fused=fused, amsgrad=False, beta1=beta1, beta2=beta2, lr=lr,
                     weight_decay=weight_decay, eps=eps, maximize=False)


def _initial_state(state: dict, param: Tensor, *, fused: bool) -> None:
    """Adam's lazy state for ``param``, as ``Adam.step`` makes it: the fused kernel keeps the step count on the
    parameter's device (float32), the other implementations on the CPU."""
    cpu_dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    state["step"] = (torch.zeros((), dtype=torch.float32, device=param.device) if fused
                     else torch.tensor(0.0, dtype=cpu_dtype))
    state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)

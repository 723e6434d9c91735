"""Optimizers and the learning-rate schedule used by every bertkit recipe.

Use from any recipe:

    from bertkit.train.optim import build_optimizer, linear_warmup_decay
    optimizer = build_optimizer(model, name="adamw", lr=5e-5, weight_decay=0.01)
    scheduler = linear_warmup_decay(optimizer, warmup_steps=100, total_steps=1000)
    for batch in loader:
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step(); scheduler.step(); optimizer.zero_grad(set_to_none=True)

HuggingFace's names work too: `AdamW`, `get_scheduler(name, ...)`, `get_linear_schedule_with_warmup`,
`get_cosine_schedule_with_warmup`, `get_constant_schedule_with_warmup` (same learning rate at every step).

Weight decay is applied to weight matrices only: biases and LayerNorm parameters (BERT's
"no_decay" list) are put in a second parameter group with weight_decay=0.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import torch
from torch import nn

from bertkit.errors import UserError

OPTIMIZERS = ("adamw", "lamb")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two parameter groups: weights that decay, and biases + LayerNorm parameters that do not.

    A parameter shared by two modules (tied embeddings) appears once.
    """
    no_decay_ids: set[int] = set()
    for module in model.modules():
        is_norm = isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d)) or "norm" in type(module).__name__.lower()
        for name, param in module.named_parameters(recurse=False):
            if is_norm or name == "bias" or name.endswith("bias"):
                no_decay_ids.add(id(param))
    decay, no_decay = [], []
    for param in model.parameters():  # deduplicated, so tied weights count once
        if not param.requires_grad:
            continue
        (no_decay if id(param) in no_decay_ids else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _fused_adamw_available(params: Iterable[torch.Tensor]) -> bool:
    # torch's fused AdamW kernel runs on CUDA and (since torch 2.4) on CPU, for floating-point parameters all on
    # one device; on CPU it is about 3x faster per step than the per-tensor loop (what HF's Trainer uses too).
    params = list(params)
    return (bool(params) and len({p.device for p in params}) == 1
            and all(p.device.type in ("cuda", "cpu") and p.is_floating_point() for p in params))


def build_optimizer(
    model: nn.Module,
    name: str = "adamw",
    lr: float = 1e-4,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-6,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """AdamW (fused when the parameters allow it, unless fused=False) or LAMB, with BERT's no-decay groups.

    `fused=True` on parameters the fused kernel cannot take raises a ValueError instead of silently running the
    slow path.
    """
    name = name.lower()
    groups = param_groups(model, weight_decay)
    if name == "adamw":
        all_params = [p for g in groups for p in g["params"]]
        can_fuse = _fused_adamw_available(all_params)
        if fused and not can_fuse:
            raise UserError("fused AdamW needs floating-point parameters all on one CPU or CUDA device; "
                             "move the model first or pass fused=False")
        use_fused = can_fuse if fused is None else fused
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=use_fused or None)
    if name == "lamb":
        return LAMB(groups, lr=lr, betas=betas, eps=eps)
    raise UserError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


class LAMB(torch.optim.Optimizer):
    """LAMB (You et al. 2019, "Large Batch Optimization for Deep Learning"): Adam's update, with decoupled
    weight decay, rescaled per parameter tensor by the trust ratio ||w|| / ||update|| so that very large
    batches train stably. Bias correction as in the paper's v3 / NVIDIA's implementation.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        max_trust_ratio: float = 10.0,
    ) -> None:
        if lr <= 0:
            raise UserError(f"LAMB learning rate must be positive, got {lr}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, max_trust_ratio=max_trust_ratio)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise UserError("LAMB does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                m_hat = exp_avg / (1 - beta1 ** state["step"])
                v_hat = exp_avg_sq / (1 - beta2 ** state["step"])
                update = m_hat / (v_hat.sqrt() + group["eps"])
                if group["weight_decay"] != 0:
                    update.add_(p, alpha=group["weight_decay"])
                w_norm = p.norm()
                u_norm = update.norm()
                # trust ratio 1 when either norm is zero (fresh zero-initialised biases, zero updates)
                trust = torch.where(
                    (w_norm > 0) & (u_norm > 0),
                    (w_norm / u_norm).clamp(max=group["max_trust_ratio"]),
                    torch.ones_like(w_norm),
                )
                p.add_(update * trust, alpha=-group["lr"])
        return loss


class WarmupLinearDecay:
    """lr multiplier: 0 -> 1 linearly over `warmup_steps`, then 1 -> `min_ratio` linearly until `total_steps`.

    A callable object (not a lambda), so `LambdaLR.state_dict()` saves it and a resumed scheduler is exact.
    """

    def __init__(self, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> None:
        if total_steps <= 0:
            raise UserError(f"total_steps must be positive, got {total_steps}")
        if not 0 <= warmup_steps <= total_steps:
            raise UserError(f"warmup_steps must be between 0 and total_steps ({total_steps}), got {warmup_steps}")
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.min_ratio = float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)  # never exactly 0: step 0 still learns a little
        remaining = max(0, self.total_steps - step) / max(1, self.total_steps - self.warmup_steps)
        return self.min_ratio + (1.0 - self.min_ratio) * remaining


def linear_warmup_decay(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """BERT's schedule: linear warmup to the peak lr, then linear decay to `min_ratio * lr` at `total_steps`.

    `warmup_steps` may be given as a fraction of `total_steps` (a float below 1, e.g. 0.06).
    """
    if isinstance(warmup_steps, float) and 0 < warmup_steps < 1:
        warmup_steps = int(math.ceil(warmup_steps * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupLinearDecay(int(warmup_steps), total_steps, min_ratio))


# --------------------------------------------------------------------------------------------------------------
# HuggingFace's names, for code written against `transformers` (the seeds do `from transformers import AdamW`).
# torch's AdamW is what transformers itself now points users to; same defaults as torch (eps=1e-8).
AdamW = torch.optim.AdamW

SCHEDULES = ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial",
             "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "warmup_stable_decay")


class WarmupSchedule:
    """lr multiplier of HuggingFace's schedules, formula for formula (its `get_scheduler` names).

    Warmup is step / warmup_steps (so step 0 has lr 0, unlike `WarmupLinearDecay`; warmup_stable_decay has its own
    warmup shapes), then, with progress = (step - warmup) / (total - warmup):
    - "linear": 1 - progress; "constant": 1;
    - "cosine": half a cosine wave per `num_cycles` * 2 (0.5: down to `min_lr_rate` once);
    - "cosine_with_restarts": a cosine down to 0, restarted `num_cycles` times;
    - "polynomial": from lr_init down to `lr_end` as (1 - progress) ** power;
    - "inverse_sqrt": 1 / sqrt((step + timescale - warmup) / timescale);
    - "warmup_stable_decay": warmup, `num_stable_steps` at 1, then `num_decay_steps` down to `min_lr_ratio`.
    Every multiplier is floored at 0. A callable object (not a lambda), so `LambdaLR.state_dict()` saves it and a
    resumed scheduler is exact.
    """

    def __init__(self, kind: str, warmup_steps: int = 0, total_steps: int | None = None, num_cycles: float = 0.5,
                 **options: Any) -> None:
        kinds = ("linear", "cosine", "constant", "cosine_with_restarts", "polynomial", "inverse_sqrt",
                 "warmup_stable_decay")
        if kind not in kinds:
            raise UserError(f"unknown schedule kind {kind!r}; choose one of {', '.join(kinds)}")
        if kind in ("linear", "cosine", "cosine_with_restarts", "polynomial") and total_steps is None:
            raise UserError(f"the {kind} schedule needs total_steps (num_training_steps)")
        self.kind = kind
        self.warmup_steps = int(warmup_steps)
        self.total_steps = None if total_steps is None else int(total_steps)
        self.num_cycles = float(num_cycles)
        self.options = options  # min_lr_rate, lr_end/power/lr_init, timescale, the warmup_stable_decay stages

    def _progress(self, step: int) -> float:
        return float(step - self.warmup_steps) / float(max(1, self.total_steps - self.warmup_steps))

    def __call__(self, step: int) -> float:
        if self.kind == "warmup_stable_decay":
            return self._warmup_stable_decay(step)
        if step < self.warmup_steps:
            return float(step) / float(max(1, self.warmup_steps))
        if self.kind == "constant":
            return 1.0
        if self.kind == "inverse_sqrt":
            timescale = self.options["timescale"]
            return 1.0 / math.sqrt((step + timescale - self.warmup_steps) / timescale)
        if self.kind == "polynomial":
            lr_init, lr_end, power = self.options["lr_init"], self.options["lr_end"], self.options["power"]
            if step > self.total_steps:
                return lr_end / lr_init
            return ((lr_init - lr_end) * (1 - self._progress(step)) ** power + lr_end) / lr_init
        if self.kind == "linear":
            return max(0.0, float(self.total_steps - step) / float(max(1, self.total_steps - self.warmup_steps)))
        progress = self._progress(step)
        if self.kind == "cosine_with_restarts":
            return 0.0 if progress >= 1.0 else max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((self.num_cycles * progress) % 1.0))))
        floor = self.options.get("min_lr_rate", 0.0)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * self.num_cycles * 2.0 * progress)) * (1 - floor) + floor)

    def _warmup_stable_decay(self, step: int) -> float:
        o = self.options
        floor, stable, decay = o["min_lr_ratio"], o["num_stable_steps"], o["num_decay_steps"]
        if step < self.warmup_steps:
            x = float(step) / float(max(1, self.warmup_steps))
            shape = {"linear": x, "cosine": 0.5 * (1.0 - math.cos(math.pi * x)), "1-sqrt": 1.0 - math.sqrt(1.0 - x)}
            return max(0.0, shape[o["warmup_type"]] * (1.0 - floor) + floor)
        if step < self.warmup_steps + stable:
            return 1.0
        if step < self.warmup_steps + stable + decay:
            x = float(step - self.warmup_steps - stable) / float(max(1, decay))
            shape = {"linear": 1.0 - x, "cosine": 0.5 * (1.0 + math.cos(math.pi * self.num_cycles * 2.0 * x)),
                     "1-sqrt": 1.0 - math.sqrt(x)}
            return max(0.0, shape[o["decay_type"]] * (1.0 - floor) + floor)
        return floor


def get_linear_schedule_with_warmup(optimizer: torch.optim.Optimizer, num_warmup_steps: int, num_training_steps: int,
                                    last_epoch: int = -1) -> torch.optim.lr_scheduler.LambdaLR:
    """0 -> lr linearly over `num_warmup_steps`, then lr -> 0 linearly at `num_training_steps` (HuggingFace's)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupSchedule("linear", num_warmup_steps, num_training_steps), last_epoch)


def get_cosine_schedule_with_warmup(optimizer: torch.optim.Optimizer, num_warmup_steps: int, num_training_steps: int,
                                    num_cycles: float = 0.5, last_epoch: int = -1) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup, then cosine decay: `num_cycles` waves over the remaining steps (0.5: lr -> 0 once)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupSchedule("cosine", num_warmup_steps, num_training_steps, num_cycles), last_epoch)


def get_constant_schedule_with_warmup(optimizer: torch.optim.Optimizer, num_warmup_steps: int,
                                      last_epoch: int = -1) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup, then the optimizer's lr unchanged."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupSchedule("constant", num_warmup_steps), last_epoch)


def get_scheduler(name: str, optimizer: torch.optim.Optimizer, num_warmup_steps: int | None = None,
                  num_training_steps: int | None = None,
                  scheduler_specific_kwargs: dict[str, Any] | None = None) -> torch.optim.lr_scheduler.LRScheduler:
    """HuggingFace's `get_scheduler`, every name of theirs (`SCHEDULES`), with their defaults.

    `scheduler_specific_kwargs` are the schedule's own (num_cycles, min_lr / min_lr_rate, lr_end and power,
    timescale, num_decay_steps / num_stable_steps / warmup_type / decay_type / min_lr_ratio, or ReduceLROnPlateau's
    mode / factor / patience); one the schedule does not take is a TypeError, as in HuggingFace.
    """
    name = str(getattr(name, "value", name)).lower()  # HF also passes a SchedulerType enum
    if name not in SCHEDULES:
        raise UserError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULES)}")
    extra = dict(scheduler_specific_kwargs or {})
    if name == "reduce_lr_on_plateau":  # stepped with the evaluation's metric, not every step
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **extra)
    if name == "constant":
        return get_constant_schedule_with_warmup(optimizer, 0, **extra)
    if num_warmup_steps is None:
        raise UserError(f"the {name} scheduler needs num_warmup_steps")
    if name == "constant_with_warmup":
        return get_constant_schedule_with_warmup(optimizer, num_warmup_steps, **extra)
    if name == "inverse_sqrt":
        return _schedule(optimizer, "inverse_sqrt", num_warmup_steps, None, timescale=num_warmup_steps or 10_000, **extra)
    if num_training_steps is None:
        raise UserError(f"the {name} scheduler needs num_training_steps")
    if name == "warmup_stable_decay":
        return _warmup_stable_decay(optimizer, num_warmup_steps, num_training_steps, **extra)
    if name == "polynomial":
        return _polynomial(optimizer, num_warmup_steps, num_training_steps, **extra)
    if name == "cosine_with_min_lr":
        return _cosine_with_min_lr(optimizer, num_warmup_steps, num_training_steps, **extra)
    if name == "cosine_with_restarts":
        return _schedule(optimizer, name, num_warmup_steps, num_training_steps, **{"num_cycles": 1, **extra})
    build = get_linear_schedule_with_warmup if name == "linear" else get_cosine_schedule_with_warmup
    return build(optimizer, num_warmup_steps, num_training_steps, **extra)


def _schedule(optimizer: torch.optim.Optimizer, kind: str, warmup: int, total: int | None,
              **options: Any) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupSchedule(kind, warmup, total, **options))


def _polynomial(optimizer: torch.optim.Optimizer, warmup: int, total: int, lr_end: float = 1e-7,
                power: float = 1.0) -> torch.optim.lr_scheduler.LambdaLR:
    lr_init = optimizer.defaults["lr"]
    if not lr_init > lr_end:
        raise UserError(f"lr_end ({lr_end}) must be smaller than the initial learning rate ({lr_init})")
    return _schedule(optimizer, "polynomial", warmup, total, lr_end=lr_end, power=power, lr_init=lr_init)


def _cosine_with_min_lr(optimizer: torch.optim.Optimizer, warmup: int, total: int, num_cycles: float = 0.5,
                        min_lr: float | None = None, min_lr_rate: float | None = None) -> torch.optim.lr_scheduler.LambdaLR:
    if (min_lr is None) == (min_lr_rate is None):
        raise UserError("cosine_with_min_lr needs one of min_lr or min_lr_rate in lr_scheduler_kwargs")
    rate = min_lr / optimizer.defaults["lr"] if min_lr is not None else min_lr_rate
    return _schedule(optimizer, "cosine", warmup, total, num_cycles=num_cycles, min_lr_rate=rate)


def _warmup_stable_decay(optimizer: torch.optim.Optimizer, warmup: int, total: int, num_decay_steps: int | None = None,
                         num_stable_steps: int | None = None, warmup_type: str = "linear", decay_type: str = "cosine",
                         min_lr_ratio: float = 0.0, num_cycles: float = 0.5) -> torch.optim.lr_scheduler.LambdaLR:
    if num_decay_steps is None:
        raise UserError("warmup_stable_decay needs num_decay_steps in lr_scheduler_kwargs")
    for name, value in (("warmup_type", warmup_type), ("decay_type", decay_type)):
        if value not in ("linear", "cosine", "1-sqrt"):
            raise UserError(f"{name} must be linear, cosine or 1-sqrt, got {value!r}")
    stable = total - warmup - num_decay_steps if num_stable_steps is None else num_stable_steps
    return _schedule(optimizer, "warmup_stable_decay", warmup, total, num_cycles=num_cycles,
                     num_stable_steps=stable, num_decay_steps=num_decay_steps, warmup_type=warmup_type,
                     decay_type=decay_type, min_lr_ratio=min_lr_ratio)


def optimizer_step(optimizer: torch.optim.Optimizer, max_grad_norm: float | None, scaler: Any = None,
                   always_norm: bool = False) -> torch.Tensor | None:
    """The end of every training step, after the backward passes: unscale (fp16), clip, step the optimizer
    (through the scaler under fp16), clear the gradients. Returns the gradient norm before clipping, still on
    the device (None when nothing clipped, unless `always_norm`, which measures it anyway for the logs)."""
    if scaler is not None:
        scaler.unscale_(optimizer)  # clipping must see the true gradients
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm = None
    if max_grad_norm and max_grad_norm > 0:
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    elif always_norm:
        grad_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm

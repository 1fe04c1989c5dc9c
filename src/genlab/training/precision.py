"""Precision and memory layout: refuse what the device cannot run, and measure the rest.

With ``trainer.precision=auto`` (and ``channels_last=auto`` for images) a short probe times one training
batch (every optimizer's forward and backward, as a Trainer step does) per candidate and keeps exact fp32
with contiguous tensors unless another candidate is at least 10 % faster. Candidates: on CPU fp32, and bf16
autocast where the CPU has native bf16 (:func:`cpu_has_native_bf16`); on CUDA bf16 (fp16 without bf16
support); each with and without channels_last for images.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import statistics
import time

import torch

from ..data.dataset import TensorDataset
from ..errors import ConfigError

log = logging.getLogger(__name__)


def check_precision(device: torch.device, precision: str) -> None:
    """Refuse a precision the device cannot run (one line with the fix)."""
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("trainer.precision=fp16 needs a CUDA device; use bf16 or fp32 on this machine")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("this GPU does not support bf16; use trainer.precision=fp16 or fp32")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (x86: AVX512-BF16 or AMX). Elsewhere torch emulates bf16, many
    times slower than fp32 for convolutions, so ``precision=auto`` does not measure it there."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without these queries: measure bf16 as before
        return True


def autocast(device: torch.device, precision: str):
    """The autocast context of ``precision`` (a null context for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def choose_precision(model, data: TensorDataset, config, device: torch.device, specs: dict) -> tuple[str, bool]:
    """``(precision, channels_last)``: the configured ones, else measured by :func:`time_candidates`. With
    ``config.deterministic`` nothing is measured: ``auto`` means fp32 and contiguous tensors."""
    check_precision(device, config.precision)
    is_image = data.kind == "image"
    if config.deterministic:
        return ("fp32" if config.precision == "auto" else config.precision), config.channels_last is True and is_image
    precisions = [config.precision] if config.precision != "auto" else (
        ["bf16" if torch.cuda.is_bf16_supported() else "fp16"] if device.type == "cuda"
        else ["fp32", "bf16"] if device.type == "cpu" and cpu_has_native_bf16() else ["fp32"])
    layouts = [config.channels_last is True and is_image] if config.channels_last != "auto" or not is_image \
        else [False, True]
    candidates = [(p, c) for p in precisions for c in layouts]
    if len(candidates) == 1:
        return candidates[0]
    batch = next(data.batches(min(config.batch_size, len(data))))
    timings = time_candidates(model, batch, device, candidates, specs)
    base = timings[candidates[0]]
    best = min(timings, key=timings.get)
    # Prefer the exact fp32/contiguous path unless another is clearly (>= 10 %) faster.
    choice = best if timings[best] < 0.9 * base else candidates[0]
    log.info("precision probe (s/step): %s -> %s",
             {f"{p}{'+cl' if c else ''}": round(t, 5) for (p, c), t in timings.items()}, choice)
    return choice


def time_candidates(model, batch: dict, device: torch.device, candidates: list[tuple[str, bool]], specs: dict,
                    rounds: int = 5) -> dict[tuple[str, bool], float]:
    """Median seconds of one training batch per (precision, channels_last): the forward and backward of every
    optimizer in ``specs``, in order, on a batch where all of them are due (no optimizer steps).

    Each candidate runs on its own copy of the model (BatchNorm statistics of ``model`` stay untouched) under
    a forked RNG; candidates are timed round-robin after one warm-up each, so drift on a noisy machine hits all
    of them alike. A candidate whose warm-up takes more than twice the fastest one's is not timed further (it
    cannot win; bf16 without hardware support is 10-20 times slower on some CPUs) and reports its warm-up time.
    The first candidate (the default) is always timed. Another candidate whose step raises (a model with an op
    that autocast or channels_last breaks) is dropped with one warning line naming the error: the run trains
    with what works instead of failing in the probe.
    """
    names = list(specs)
    step = math.lcm(*(s.every for s in specs.values())) - 1  # a batch on which every optimizer steps
    probes = {}
    for prec, cl in candidates:
        m = copy.deepcopy(model)
        b = batch
        if cl:
            m.to(memory_format=torch.channels_last)
            b = {**batch, "x": batch["x"].contiguous(memory_format=torch.channels_last)}
        probes[(prec, cl)] = (m, b)
    times: dict[tuple[str, bool], list[float]] = {c: [] for c in candidates}
    devices = [device] if device.type == "cuda" else []
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    warm: dict[tuple[str, bool], float] = {}
    with torch.random.fork_rng(devices=devices):
        for r in range(rounds + 1):
            for (prec, cl), (m, b) in list(probes.items()):
                sync()
                t0 = time.perf_counter()
                try:
                    for name in names:
                        m.zero_grad(set_to_none=True)
                        with autocast(device, prec):
                            out = m.training_step(b, step, name)
                        out["loss"].backward()
                except Exception as e:  # noqa: BLE001 (any failure of a non-default candidate rules it out)
                    if (prec, cl) == candidates[0]:
                        raise
                    log.warning("precision probe: %s%s fails for %s (%s: %s); not used", prec,
                                " + channels_last" if cl else "", type(model).__name__, type(e).__name__,
                                (str(e).splitlines() or [""])[0][:200])
                    del probes[(prec, cl)]
                    del times[(prec, cl)]
                    continue
                sync()
                if r:
                    times[(prec, cl)].append(time.perf_counter() - t0)
                else:
                    warm[(prec, cl)] = time.perf_counter() - t0
                m.zero_grad(set_to_none=True)
            if r == 0:
                fastest = min(warm.values())  # a candidate that failed has no warm-up time
                for c in list(probes):
                    if c != candidates[0] and warm[c] > 2 * fastest:
                        del probes[c]
                        times[c] = [warm[c]]
    return {c: statistics.median(t) for c, t in times.items()}

"""Data-parallel training over several processes, launched by torchrun (``torch.distributed``).

The Trainer calls this module when torchrun's environment says the run has more than one process
(``WORLD_SIZE`` > 1, with ``RANK`` and ``LOCAL_RANK``). Off that path nothing here runs.

How a step works with ``W`` processes (see docs/distributed.md):

* every rank draws the same shuffled order of the epoch (the same generator state) and takes the same global
  batch of ``trainer.batch_size`` samples; rank ``r`` trains on the ``r``-th contiguous chunk of it
  (``torch.tensor_split``), so the union over ranks is exactly the single-process batch;
* after each optimizer's backward pass the gradients of that optimizer's parameters are averaged over the ranks,
  weighted by each rank's share of the batch (one flat ``all_reduce`` per optimizer update), before clipping
  and the optimizer step: every rank then applies the same update and the weights stay identical. This is
  what ``DistributedDataParallel`` does, done at the optimizer instead of inside a wrapped ``forward``:
  genlab's models call their sub-networks from ``training_step`` (a GAN runs the critic three times for a
  gradient penalty, through ``torch.autograd.grad``, and steps two optimizers on one batch), which DDP's reducer
  does not support without wrapping every sub-network; gradient averaging at the optimizer needs no wrapper,
  keeps the state-dict keys, and is exact for any model (StyleGAN2-ADA trains the same way);
* the logged values are averaged the same way, so ``metrics.jsonl`` holds global-batch means;
* buffers (BatchNorm running statistics) are broadcast from rank 0 after every step, as DDP does before every
  forward; ``trainer.sync_batchnorm=true`` converts BatchNorm to ``SyncBatchNorm`` (CUDA only).

Only rank 0 writes files; every rank validates the whole validation split (the same numbers on every rank, so
early stopping decides the same everywhere). Checkpoints hold every rank's RNG states and the world size, so a
resumed run continues bit for bit, and only with the same number of processes.
"""
from __future__ import annotations

import datetime
import json
import logging
import os

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError, DataError

log = logging.getLogger(__name__)

#: Environment variables torchrun sets for every worker.
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not an integer; launch with torchrun "
                          "(which sets RANK, WORLD_SIZE and LOCAL_RANK) or unset it") from None


def world() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment; ``(0, 1, 0)`` without it."""
    size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if size < 1 or not 0 <= rank < size:
        raise ConfigError(f"RANK={rank} and WORLD_SIZE={size} do not describe a process of the run; launch with "
                          "torchrun, which sets them")
    return rank, size, local


def is_distributed() -> bool:
    """Whether this process is one of several launched by torchrun (``WORLD_SIZE`` > 1)."""
    return world()[1] > 1


def is_follower() -> bool:
    """Whether this process is a rank other than 0 of a multi-process run: it trains in step with rank 0 and
    writes nothing (no run folder, no checkpoints, no figures, no terminal report)."""
    rank, size, _ = world()
    return size > 1 and rank > 0


def resolve_backend(name: str, device: torch.device) -> str:
    """``trainer.ddp_backend`` for ``device``: ``auto`` = NCCL on CUDA, gloo otherwise; NCCL is refused where
    it cannot run."""
    import torch.distributed as dist

    if name == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if name == "nccl":
        if device.type != "cuda":
            raise ConfigError(f"trainer.ddp_backend=nccl needs CUDA devices, but this run trains on {device.type}; "
                              "use trainer.ddp_backend=gloo (or auto)")
        if not dist.is_nccl_available():
            raise ConfigError("trainer.ddp_backend=nccl: this torch build has no NCCL; use trainer.ddp_backend=gloo")
    if name == "gloo" and not dist.is_gloo_available():
        raise ConfigError("trainer.ddp_backend=gloo: this torch build has no gloo backend; use "
                          "trainer.ddp_backend=nccl on CUDA")
    return name


def device_for(device: torch.device, local_rank: int) -> torch.device:
    """One CUDA device per process: ``cuda`` (or ``auto`` on a CUDA machine) becomes ``cuda:LOCAL_RANK``."""
    if device.type != "cuda":
        return device
    if device.index is not None and device.index != local_rank and torch.cuda.device_count() > 1:
        log.warning("trainer.device=%s under torchrun: process %d uses cuda:%d (one device per process)",
                    device, local_rank, local_rank)
    n = torch.cuda.device_count()
    if local_rank >= n:
        raise ConfigError(f"LOCAL_RANK={local_rank} but this machine has {n} CUDA device(s); launch at most {n} "
                          "processes per node (torchrun --nproc_per_node) or train on cpu")
    return torch.device("cuda", local_rank)


def check_run(cfg, device: torch.device, n_train: int) -> None:
    """Everything a multi-process run refuses before anything runs (the same answer on every rank): a batch
    the world size does not divide, a rank left without samples in the last batch, an unavailable backend,
    SyncBatchNorm off CUDA. No-op for a single process."""
    rank, size, local = world()
    if size == 1:
        return
    if cfg.batch_size % size:
        raise ConfigError(f"trainer.batch_size={cfg.batch_size} is the global batch and must be divisible by the "
                          f"{size} processes (each takes batch_size / world size); use a multiple of {size}")
    last = n_train % cfg.batch_size
    if not cfg.drop_last and 0 < last < size:
        raise DataError(f"the last batch of each epoch holds {last} sample(s) for {size} processes, so a rank's "
                        "shard would be empty; set trainer.drop_last=true or change trainer.batch_size")
    dev = device_for(device, local)
    resolve_backend(cfg.ddp_backend, dev)
    if cfg.sync_batchnorm and dev.type != "cuda":
        raise ConfigError("trainer.sync_batchnorm=true needs CUDA (torch's SyncBatchNorm runs on GPUs only); "
                          "set trainer.sync_batchnorm=false on cpu")


class Distributed:
    """The process group of a torchrun launch as the Trainer uses it. Built by :meth:`setup`."""

    def __init__(self, rank: int, world_size: int, local_rank: int, backend: str, device: torch.device,
                 owns_group: bool):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.backend, self.device, self.owns_group = backend, device, owns_group
        self._bn_swaps: list = []

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def setup(cls, cfg, device: torch.device) -> "Distributed | None":
        """Join (or reuse) the default process group when ``WORLD_SIZE`` > 1; ``None`` for a single process."""
        import torch.distributed as dist

        rank, size, local = world()
        if size == 1:
            return None
        device = device_for(device, local)
        backend = resolve_backend(cfg.ddp_backend, device)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        owns = not dist.is_initialized()
        if owns:
            kw = {"device_id": device} if device.type == "cuda" else {}
            dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=cfg.ddp_timeout), **kw)
        elif dist.get_world_size() != size or dist.get_rank() != rank:
            raise ConfigError(f"the process group already set up has {dist.get_world_size()} processes but "
                              f"WORLD_SIZE={size}; let the Trainer set it up")
        log.info("distributed: rank %d of %d (local rank %d), backend %s, device %s", rank, size, local,
                 backend, device)
        return cls(rank, size, local, backend, device, owns)

    def close(self) -> None:
        """Wait for every rank, then leave the process group if this object joined it."""
        import torch.distributed as dist

        if dist.is_initialized():
            self.restore_batchnorm()
            if self.owns_group:
                dist.barrier()
                dist.destroy_process_group()

    # -- set-up of the model ------------------------------------------------------------------------
    def reseed(self, seed: int) -> None:
        """Give ranks > 0 their own training noise (reparameterisation, latent draws, dropout): Python, NumPy
        and torch seeded from ``(seed, rank)``. Rank 0 keeps the stream it has."""
        if self.rank == 0:
            return
        import random

        s = int(np.random.SeedSequence([seed, self.rank]).generate_state(1, np.uint64)[0] % (2**63 - 1))
        random.seed(s)
        np.random.seed(s % 2**32)
        torch.manual_seed(s)

    def sync_batchnorm(self, model: torch.nn.Module) -> int:
        """Replace every BatchNorm layer of ``model`` by a ``SyncBatchNorm`` sharing its parameters and buffers
        (undone by :meth:`close`, so the model that comes back holds plain BatchNorm). Returns how many."""
        bn = torch.nn.modules.batchnorm._BatchNorm
        swaps = []
        for parent in model.modules():
            for name, child in list(parent.named_children()):
                if isinstance(child, bn) and not isinstance(child, torch.nn.SyncBatchNorm):
                    sync = torch.nn.SyncBatchNorm.convert_sync_batchnorm(child)
                    setattr(parent, name, sync)
                    swaps.append((parent, name, child))
        self._bn_swaps = swaps
        return len(swaps)

    def restore_batchnorm(self) -> None:
        for parent, name, child in self._bn_swaps:
            setattr(parent, name, child)  # the same parameter and buffer tensors: nothing to copy
        self._bn_swaps = []

    @torch.no_grad()
    def broadcast_module(self, model: torch.nn.Module, *, buffers_only: bool = False) -> None:
        """Rank 0's parameters (unless ``buffers_only``) and buffers on every rank."""
        import torch.distributed as dist

        tensors = [b for b in model.buffers()]
        if not buffers_only:
            tensors = [p.data for p in model.parameters()] + tensors
        for t in tensors:
            dist.broadcast(t, src=0)

    def broadcast_choice(self, precision: str, channels_last: bool) -> tuple[str, bool]:
        """Rank 0's measured precision / channels_last on every rank (the probes time each process)."""
        import torch.distributed as dist

        names = ("fp32", "bf16", "fp16")
        t = torch.tensor([names.index(precision), int(channels_last)], dtype=torch.int64, device=self.device)
        dist.broadcast(t, src=0)
        return names[int(t[0])], bool(t[1])

    # -- one step -----------------------------------------------------------------------------------
    def shard(self, batch: dict) -> tuple[dict, float]:
        """This rank's contiguous chunk of the global ``batch`` and its weight ``W * n_rank / n_batch`` (1 when
        the world size divides the batch)."""
        n = len(batch["x"])
        local = {k: v.tensor_split(self.world_size)[self.rank] if isinstance(v, torch.Tensor) else v
                 for k, v in batch.items()}
        return local, self.world_size * len(local["x"]) / n

    @torch.no_grad()
    def average_grads(self, params, weight: float) -> None:
        """Replace the gradients of ``params`` by their weighted mean over the ranks (one flat all-reduce)."""
        import torch.distributed as dist

        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        if weight != 1.0:
            flat.mul_(weight)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(self.world_size)
        i = 0
        for g in grads:
            g.copy_(flat[i:i + g.numel()].view_as(g))
            i += g.numel()

    @torch.no_grad()
    def average_logs(self, out: dict, weight: float, flags: tuple[bool, ...] = (),
                     values: tuple[float, ...] = ()) -> tuple[dict, tuple[bool, ...], tuple[float, ...]]:
        """The step's logged values as weighted means over the ranks, ``flags`` OR-ed over the ranks (an
        interrupt on any rank stops every rank at the same step) and ``values`` as plain means over the ranks
        (the share of the time budget used, so every rank decays its learning rate alike and stops together),
        in one collective."""
        import torch.distributed as dist

        keys = list(out)
        vals = [out[k].detach().float().reshape(()).to(self.device) * weight for k in keys]
        extra = [float(f) for f in flags] + [float(v) for v in values]
        if not vals and not extra:
            return out, flags, values
        t = torch.cat(([torch.stack(vals)] if vals else [])
                      + [torch.tensor(extra, dtype=torch.float32, device=self.device)])
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        n = len(keys)
        means = {k: t[i] / self.world_size for i, k in enumerate(keys)}
        return (means, tuple(bool(t[n + j] > 0) for j in range(len(flags))),
                tuple(float(t[n + len(flags) + j]) / self.world_size for j in range(len(values))))

    def any(self, flag: bool) -> bool:
        """``flag`` OR-ed over the ranks."""
        import torch.distributed as dist

        t = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return bool(t[0] > 0)

    @torch.no_grad()
    def gather_rows(self, vec: torch.Tensor) -> torch.Tensor:
        """Every rank's 1-D float64 ``vec`` (all ranks give the same length), stacked in rank order ``(W, L)``
        on every rank (used to merge the sample-quality monitor's per-rank statistics)."""
        import torch.distributed as dist

        mine = vec.detach().to(device=self.device, dtype=torch.float64).reshape(-1)
        bufs = [torch.empty_like(mine) for _ in range(self.world_size)]
        dist.all_gather(bufs, mine)
        return torch.stack(bufs).cpu()

    # -- checkpoints --------------------------------------------------------------------------------
    def gather_rng(self, meta: dict, tensors: dict[str, torch.Tensor]) -> list[tuple[dict, dict[str, torch.Tensor]]]:
        """Every rank's RNG states (``meta`` JSON, ``tensors``), in rank order, on every rank. Sent as
        safetensors bytes through ``all_gather`` (no pickle)."""
        import torch.distributed as dist
        from safetensors.torch import load, save

        blob = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                    metadata={"meta": json.dumps(meta)})
        mine = torch.frombuffer(bytearray(blob), dtype=torch.uint8).to(self.device)
        sizes = [torch.zeros(1, dtype=torch.int64, device=self.device) for _ in range(self.world_size)]
        dist.all_gather(sizes, torch.tensor([mine.numel()], dtype=torch.int64, device=self.device))
        top = int(max(int(s) for s in sizes))
        padded = torch.zeros(top, dtype=torch.uint8, device=self.device)
        padded[:mine.numel()] = mine
        bufs = [torch.empty(top, dtype=torch.uint8, device=self.device) for _ in range(self.world_size)]
        dist.all_gather(bufs, padded)
        out = []
        for buf, size in zip(bufs, sizes):
            raw = bytes(buf[:int(size)].cpu().numpy().tobytes())
            out.append((_read_meta(raw), load(raw)))
        return out


def _read_meta(raw: bytes) -> dict:
    """The ``meta`` JSON stored in the header of safetensors bytes."""
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    return json.loads(header["__metadata__"]["meta"])


def check_world_size(saved: int | None, path) -> None:
    """A checkpoint resumes only with the number of processes that wrote it (the shuffled order is sharded by
    rank and each rank's RNG stream is in the checkpoint)."""
    size = world()[1]
    saved = 1 if saved is None else int(saved)
    if saved != size:
        how = ("one process (plain genlab train)" if saved == 1 else
               f"{saved} processes (genlab train --nproc {saved}, or torchrun --nproc_per_node/--nnodes giving "
               f"WORLD_SIZE={saved})")
        raise CheckpointError(f"{path} was written by a run of {saved} process(es) but this run has {size}; "
                              f"resume it with {how}")

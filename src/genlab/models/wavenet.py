"""WaveNet (``wavenet``): an autoregressive model of sequences ``(C, T)`` with an exact likelihood.

van den Oord et al. 2016, "WaveNet: A Generative Model for Raw Audio": a causal convolution, then a stack of
gated residual blocks (dilated causal convolution of width ``kernel``, ``tanh(a) * sigmoid(b)``, a 1x1 residual
and a 1x1 skip output), the skip outputs summed, ``ReLU -> 1x1 -> ReLU -> 1x1`` to a 256-way softmax per channel
and step. The dilations double per layer (``1, 2, ..., 2^(layers-1)``) and the pattern repeats ``stacks`` times.

Order and causality. Step ``t`` of every channel is predicted from steps ``< t`` of all channels (the inputs are
shifted right by one step, with a zero step in front; zero is the mean of standardised data); the channels of one
step are independent given the past (a product of per-channel softmaxes: a proper joint distribution). The
prediction at ``t`` sees the last :attr:`WaveNet.receptive_field` steps,
``R = (first_kernel - 1) + (kernel - 1) * stacks * (2^layers - 1) + 1``; earlier steps enter as zeros. The
training windows must hold at least ``R`` steps (a one-line ConfigError otherwise), so the model never learns from
windows whose every prediction sees the zero padding.

Quantisation (``mu``-law, the WaveNet paper's 8-bit companding). The data are standardised sequences (genlab
standardises sequences per channel by the training split, ``data.standardize``). A value ``x`` is divided by
``value_range`` ``V`` (default 8: +-8 standard deviations; mu-law bins are fine near 0 and wide in the tails,
so a wide range costs little resolution where most values lie), companded
``f(u) = sign(u) ln(1 + mu |u|) / ln(1 + mu)`` with ``mu = bins - 1 = 255``, and quantised uniformly in
``[-1, 1]`` into ``bins`` (256) bins: bin ``k`` covers ``f`` in ``[-1 + 2k/bins, -1 + 2(k+1)/bins)``, i.e.
``x`` in ``[e_k, e_{k+1})`` with ``e_k = V f^-1(-1 + 2k/bins)``.
A value is decoded as the centre of its bin in the companded space, ``V f^-1(-1 + (2k + 1)/bins)``. Values
with ``|x| > V`` are refused (one-line DataError: raise ``value_range`` or standardise the data) unless
``clip=true``, which clips them to ``+-V`` (documented loss: their likelihood is that of the edge bin).

Heads. ``head="softmax"`` (default, the paper's): a ``bins``-way softmax per channel and step.
``head="logistic_mixture"``: a discretised mixture of ``n_mix`` logistics over the same bins (PixelCNN++, Salimans et
al. 2017, :func:`genlab.models.pixelcnn.logistic_mixture_log_prob`): bin ``k`` is level ``k`` of ``bins`` levels
on the mixture's ``[-1, 1]`` scale (the companded scale up to an affine map), the edge bins take the tails, so the
probabilities sum to 1; ``3 n_mix`` outputs instead of ``bins``, and neighbouring bins share mass (the softmax
learns each bin separately, which needs far more data on short series).

Likelihood. ``log_likelihood(x)``: exact ``sum_{c,t} log P(bin(x_{c,t}) | x_{<t})`` in nats per sequence
(probabilities of the discrete bins); :meth:`WaveNet.step_log_probs` gives the ``(B, C, T)`` terms, and with
``density=True`` the log density of the piecewise-constant density on the standardised scale
(``log P(bin) - log(e_{k+1} - e_k)``), which is comparable with a continuous model's density of the same
standardised values (e.g. a Gaussian AR model); subtract ``log(std)`` of the standardisation for raw units.

Sampling. ``sample(n, length=None)`` draws step by step; ``cache=True`` (default) keeps, per layer, the past
inputs the dilated convolution needs (the fast-WaveNet queues of Paine et al. 2016, held as one buffer per layer):
each new step costs one column per layer instead of a forward pass over the whole prefix. It is exact: the outputs
equal the full causal pass (``cache=False``, the reference) up to float rounding, and both draw the same bins from
the same uniforms.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check
from .pixelcnn import logistic_mixture_log_prob
from ..errors import ConfigError, DataError
from ..registry import register_model
from .base import GenerativeModel, OptimizerSpec

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- mu-law
def mu_law_encode(x: torch.Tensor, bins: int = 256, value_range: float = 8.0) -> torch.Tensor:
    """Bin indices ``0..bins-1`` (int64) of values ``x`` in ``[-value_range, value_range]`` (see the module doc)."""
    mu = bins - 1
    u = (x / value_range).clamp(-1.0, 1.0)
    f = torch.sign(u) * torch.log1p(mu * u.abs()) / math.log1p(mu)   # [-1, 1]
    return ((f + 1.0) * (bins / 2.0)).floor().clamp(0, bins - 1).long()


def mu_law_expand(f: torch.Tensor, bins: int = 256, value_range: float = 8.0) -> torch.Tensor:
    """Values ``V f^-1(f)`` of companded values ``f`` in ``[-1, 1]``."""
    mu = bins - 1
    return value_range * torch.sign(f) * torch.expm1(f.abs() * math.log1p(mu)) / mu


def mu_law_decode(k: torch.Tensor, bins: int = 256, value_range: float = 8.0) -> torch.Tensor:
    """Bin centres (in the companded space) of bin indices ``k``, as values."""
    return mu_law_expand(-1.0 + (2.0 * k.double() + 1.0) / bins, bins, value_range).float()


def mu_law_edges(bins: int = 256, value_range: float = 8.0) -> torch.Tensor:
    """The ``bins + 1`` bin edges ``e_0 = -V < e_1 < ... < e_bins = V`` (float64)."""
    e = mu_law_expand(torch.linspace(-1.0, 1.0, bins + 1, dtype=torch.float64), bins, value_range)
    e[0], e[-1] = -value_range, value_range   # exact ends (expm1(log1p(mu)) / mu rounds)
    return e


# ---------------------------------------------------------------------------- network
class CausalConv(nn.Conv1d):
    """Dilated causal 1-D convolution: output ``t`` sees inputs ``t - (k-1) d .. t`` (left zero padding)."""

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int = 1):
        super().__init__(cin, cout, kernel, dilation=dilation)
        self.left = (kernel - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # (B, cin, T) -> (B, cout, T)
        return super().forward(F.pad(x, (self.left, 0)))

    def step(self, past: torch.Tensor) -> torch.Tensor:
        """The output at the last step from the last ``left + 1`` inputs ``(B, cin, left + 1)`` -> ``(B, cout, 1)``."""
        return super().forward(past[:, :, past.shape[2] - self.left - 1:])


class GatedBlock(nn.Module):
    def __init__(self, channels: int, skip: int, kernel: int, dilation: int):
        super().__init__()
        self.conv = CausalConv(channels, 2 * channels, kernel, dilation)
        self.res = nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, skip, 1)

    def gate(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t, s = a.chunk(2, dim=1)
        z = torch.tanh(t) * torch.sigmoid(s)
        return self.res(z), self.skip(z)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r, s = self.gate(self.conv(h))
        return (h + r) * math.sqrt(0.5), s


class WaveNetNet(nn.Module):
    """``(B, C, T)`` companded inputs (shifted: position ``t`` holds step ``t - 1``) -> ``(B, C, K, T)`` outputs
    (``K = bins`` logits, or ``3 n_mix`` mixture parameters)."""

    def __init__(self, c_in: int, channels: int, skip: int, kernel: int, first_kernel: int, dilations: list[int],
                 k_out: int):
        super().__init__()
        self.c_in, self.k_out = c_in, k_out
        self.first = CausalConv(c_in, channels, first_kernel)
        self.blocks = nn.ModuleList(GatedBlock(channels, skip, kernel, d) for d in dilations)
        self.out1 = nn.Conv1d(skip, skip, 1)
        self.out2 = nn.Conv1d(skip, c_in * k_out, 1)

    def head(self, skip: torch.Tensor) -> torch.Tensor:
        o = self.out2(F.relu(self.out1(F.relu(skip))))                      # (B, C * K, T)
        return o.view(o.shape[0], self.c_in, self.k_out, o.shape[2])         # (B, C, K, T)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        h = self.first(u)
        total = 0.0
        for b in self.blocks:
            h, s = b(h)
            total = total + s
        return self.head(total)


# ---------------------------------------------------------------------------- model
@dataclass
class WaveNetConfig:
    """WaveNet settings.

    ``channels``: residual channels; ``skip_channels``: skip/output channels. ``layers``: gated blocks per stack
    (dilations ``1 .. 2^(layers-1)``), ``stacks``: repeats of that pattern; ``kernel``: width of the dilated
    convolutions, ``first_kernel``: of the first causal convolution (receptive field: see the module docstring).
    ``bins``: quantisation bins (mu = bins - 1); ``value_range``: the standardised values ``[-V, V]`` that are
    quantised; ``clip``: clip values outside instead of refusing them. ``head``: ``softmax`` or
    ``logistic_mixture`` of ``n_mix`` components (module docstring). ``lr``/``weight_decay``: Adam.
    """

    head: Literal["softmax", "logistic_mixture"] = "softmax"
    n_mix: int = 5

    channels: int = 32
    skip_channels: int = 64
    layers: int = 5
    stacks: int = 1
    kernel: int = 2
    first_kernel: int = 2
    bins: int = 256
    value_range: float = 8.0
    clip: bool = False
    lr: float = 1e-3
    weight_decay: float = 0.0

    def __post_init__(self):
        for f in ("channels", "skip_channels", "layers", "stacks"):
            check(getattr(self, f) >= 1, f"{f} must be >= 1, got {getattr(self, f)}")
        check(self.layers <= 16, f"layers must be <= 16 (dilation 2^15), got {self.layers}")
        check(self.kernel >= 2, f"kernel must be >= 2, got {self.kernel}")
        check(self.first_kernel >= 1, f"first_kernel must be >= 1, got {self.first_kernel}")
        check(2 <= self.bins <= 65536, f"bins must be in 2..65536, got {self.bins}")
        check(math.isfinite(self.value_range) and self.value_range > 0,
              f"value_range must be a finite number > 0, got {self.value_range}")
        check(self.head in ("softmax", "logistic_mixture"),
              f"head must be 'softmax' or 'logistic_mixture', got {self.head!r}")
        check(1 <= self.n_mix <= 64, f"n_mix must be in 1..64, got {self.n_mix}")
        check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")


@register_model("wavenet", WaveNetConfig, "WaveNet: dilated causal convolutions, mu-law softmax, exact likelihood")
class WaveNet(GenerativeModel):
    """WaveNet over standardised sequences ``(C, T)`` with a ``bins``-way mu-law softmax; see the module docstring.

    Loss: the mean over the batch of ``-log p(x) / (C T)`` (nats per step and channel); logged ``nll`` (nats per
    sequence).
    """

    has_encoder = False
    has_decoder = False
    can_reconstruct = False
    can_sample = True
    has_likelihood = True
    input_kinds = ("sequence",)

    def __init__(self, config: WaveNetConfig, data_info: dict):
        super().__init__(config, data_info)
        c = config
        self.dilations = [2 ** i for _ in range(c.stacks) for i in range(c.layers)]
        self.receptive_field = (c.first_kernel - 1) + (c.kernel - 1) * sum(self.dilations) + 1
        C, T = self.shape
        if T < self.receptive_field:
            raise ConfigError(f"wavenet: the training sequences have {T} steps, fewer than the receptive field of "
                              f"{self.receptive_field} steps (layers={c.layers}, stacks={c.stacks}, "
                              f"kernel={c.kernel}); use longer windows (data.window) or fewer layers")
        self.net = WaveNetNet(C, c.channels, c.skip_channels, c.kernel, c.first_kernel, self.dilations,
                              c.bins if c.head == "softmax" else 3 * c.n_mix)
        self.register_buffer("edges", mu_law_edges(c.bins, c.value_range).float(), persistent=False)
        self.register_buffer("centres", mu_law_decode(torch.arange(c.bins), c.bins, c.value_range),
                             persistent=False)

    # -- data ----------------------------------------------------------------------------------------------------
    def check_sequences(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T')`` float32 on the model's device, any length ``T' >= 1``; wrong channels, non-finite
        values and (unless ``clip``) values outside ``[-value_range, value_range]`` are one-line DataErrors."""
        C = self.shape[0]
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[1] != C or x.shape[2] < 1:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise DataError(f"wavenet: input must be sequences (B, {C}, T) with the {C} channel(s) the model was "
                            f"trained on, got {shape}; give data of the training channels")
        x = x.to(self.device, torch.float32)
        if not bool(torch.isfinite(x).all()):
            raise DataError("wavenet: the sequences hold NaN or infinite values; fill or drop them first")
        V = self.config.value_range
        if not self.config.clip and bool((x.abs() > V).any()):
            v = float(x[x.abs() > V][0])
            raise DataError(f"wavenet: value {v:.4g} is outside the quantisation range [-{V:g}, {V:g}] (standardised "
                            f"units); standardise the data (data.standardize=true), raise model.value_range or set "
                            "model.clip=true")
        return x

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Bin indices ``(B, C, T)`` of checked sequences."""
        return mu_law_encode(self.check_sequences(x), self.config.bins, self.config.value_range)

    def _net_input(self, q: torch.Tensor) -> torch.Tensor:
        """Companded bin centres in [-1, 1], shifted one step right (position t holds step t - 1, a 0 in front)."""
        u = -1.0 + (2.0 * q.float() + 1.0) / self.config.bins       # (B, C, T)
        return F.pad(u, (1, 0))[:, :, :-1]

    def _all_lp(self, o: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of every bin ``(B, C, bins, ...)`` from network outputs ``(B, C, K, ...)``."""
        if self.config.head == "softmax":
            return torch.log_softmax(o, dim=2)
        params = o.movedim(2, -1)                                             # (B, C, ..., 3M)
        lv = torch.arange(self.config.bins, device=o.device)
        lp = logistic_mixture_log_prob(params.unsqueeze(-2), lv.view(*([1] * (params.ndim - 1)), -1),
                                       self.config.bins)                      # (B, C, ..., bins)
        return lp.movedim(-1, 2)

    @torch.no_grad()
    def bin_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, bins, T)``: ``log P(bin k at step t | x_<t)`` for every bin and step of sequences ``x``."""
        return self._all_lp(self.net(self._net_input(self.quantize(x))))

    # -- likelihood ----------------------------------------------------------------------------------------------
    def _step_lp(self, q: torch.Tensor) -> torch.Tensor:
        o = self.net(self._net_input(q))                                      # (B, C, K, T)
        if self.config.head == "softmax":
            return torch.log_softmax(o, dim=2).gather(2, q.unsqueeze(2)).squeeze(2)   # (B, C, T)
        return logistic_mixture_log_prob(o.movedim(2, -1), q, self.config.bins)

    @torch.no_grad()
    def step_log_probs(self, x: torch.Tensor, *, density: bool = False, batch_size: int = 256) -> torch.Tensor:
        """``(B, C, T)`` terms ``log P(bin(x_{c,t}) | x_<t)`` in nats; ``density=True``: minus the log width of the
        bin, the log density on the standardised scale (see the module docstring)."""
        q = self.quantize(x)
        out = torch.cat([self._step_lp(qb) for qb in q.split(batch_size)]) if len(q) else \
            torch.zeros(q.shape, device=q.device)
        if density:
            width = (self.edges[1:] - self.edges[:-1]).to(out.device)
            out = out - torch.log(width)[q]
        return out

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, k: int | None = None, labels: torch.Tensor | None = None, *,
                       generator: torch.Generator | None = None, batch_size: int = 256) -> torch.Tensor:
        """Exact ``log p(x)`` of the quantised sequences in nats per sequence.

        Parameters
        ----------
        x : Tensor of shape (B, C, T)
            Standardised sequences, any length ``T``.
        k, generator
            Ignored (the likelihood is exact); accepted so callers of the VAE's IWAE estimate work unchanged.
        labels
            Must be None (the model is unconditional).
        batch_size : int
            Sequences per forward pass.

        Returns
        -------
        Tensor of shape (B,)
            Nats per sequence; divide by ``C * T`` for nats per step (see also :meth:`step_log_probs`).
        """
        self.check_importance_samples(k, exact=True)
        self._no_labels(labels)
        return self.step_log_probs(x, batch_size=batch_size).flatten(1).sum(1)

    @torch.no_grad()
    def elbo(self, x: torch.Tensor, labels: torch.Tensor | None = None, *, generator: torch.Generator | None = None,
             batch_size: int = 256) -> torch.Tensor:
        """The exact ``log p(x)`` (an autoregressive model's bound is tight), nats per sequence ``(B,)``."""
        return self.log_likelihood(x, labels=labels, batch_size=batch_size)

    def _no_labels(self, labels) -> None:
        if labels is not None:
            raise ConfigError("model 'wavenet' is unconditional and takes no labels; drop labels=")

    # -- training ------------------------------------------------------------------------------------------------
    def training_step(self, batch: dict, step: int, optimizer: str = "main") -> dict:
        nll = -self._step_lp(self.quantize(batch["x"])).flatten(1).sum(1)   # (B,) nats per sequence
        per_step = nll / self.dim
        return {"loss": per_step.mean(), "nll": nll.mean().detach()}

    def configure_optimizers(self) -> dict[str, OptimizerSpec]:
        c = self.config
        return {"main": OptimizerSpec(torch.optim.Adam(self.parameters(), lr=c.lr, weight_decay=c.weight_decay))}

    # -- prediction ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def one_step_mean(self, x: torch.Tensor) -> torch.Tensor:
        """``E[x_t | x_<t]`` for every step of ``x`` (teacher forcing), ``(B, C, T)``: the bin probabilities times
        the bin centres. The 1-step-ahead forecast of step ``t`` is entry ``t``."""
        p = self.bin_log_probs(x).double().exp()                            # (B, C, bins, T)
        return torch.einsum("bckt,k->bct", p, self.centres.double()).float()

    @torch.no_grad()
    def forecast(self, x_context: torch.Tensor, steps: int = 1, *, samples: int = 100,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Predictive mean of the ``steps`` steps after ``x_context`` ``(B, C, T0)``, ``(B, C, steps)``.

        Step 1 is exact (the bin probabilities times the bin centres); further steps are the mean of ``samples``
        continuations drawn with the cache (Monte Carlo, ``generator`` seeds it).
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"steps must be an integer >= 1, got {steps!r}")
        x = self.check_sequences(x_context)
        nxt = self.one_step_mean(F.pad(x, (0, 1)))[:, :, -1:]               # the last position sees all of x
        if steps == 1:
            return nxt
        B, C, T0 = x.shape
        rep = x.repeat_interleave(samples, 0)
        paths = self._sample_steps(len(rep), T0 + steps, generator, cache=True, prefix=self.quantize(rep))
        mean = self.centres[paths[:, :, T0:]].view(B, samples, C, steps).mean(1)
        mean[:, :, 0] = nxt[:, :, 0]
        return mean

    # -- sampling ------------------------------------------------------------------------------------------------
    def _uniform(self, shape, generator: torch.Generator | None) -> torch.Tensor:
        dev = "cpu" if generator is None or generator.device.type == "cpu" else generator.device
        return torch.rand(shape, generator=generator, device=dev, dtype=torch.float64).to(self.device)

    def _draw(self, out: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Bins ``(B, C)`` from network outputs ``(B, C, K)`` by inverting the CDF at uniforms ``u`` ``(B, C)``."""
        cdf = torch.softmax(self._all_lp(out.double()), dim=2).cumsum(2)
        return (cdf < u[..., None]).sum(2).clamp(max=self.config.bins - 1)

    @torch.no_grad()
    def sample(self, n: int, *, labels: torch.Tensor | None = None, generator: torch.Generator | None = None,
               length: int | None = None, cache: bool = True, progress: bool | None = None) -> torch.Tensor:
        """Draw ``n`` sequences of ``length`` steps (default: the training length), step by step.

        Parameters
        ----------
        n : int
            Number of sequences (``>= 1``).
        labels
            Must be None (unconditional).
        generator : torch.Generator, optional
            Source of the uniforms: one ``(n, C)`` draw per step, in time order.
        length : int, optional
            Steps per sequence; the network is convolutional, so any length works (its conditionals see the
            last ``receptive_field`` steps).
        cache : bool
            ``True``: the fast exact cache (see the module docstring); ``False``: a full causal pass per step.
        progress : bool or None
            The progress display switch of :func:`genlab.training.progress.progress_enabled`.

        Returns
        -------
        Tensor of shape (n, C, length)
            Standardised values (bin centres).
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"number of samples must be an integer >= 1, got {n!r}")
        self._no_labels(labels)
        T = self.shape[1] if length is None else length
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ConfigError(f"length must be an integer >= 1, got {length!r}")
        q = self._sample_steps(n, T, generator, cache=cache, progress=progress)
        return self.centres[q]

    def _sample_steps(self, n: int, T: int, generator, *, cache: bool, prefix: torch.Tensor | None = None,
                      progress: bool | None = None) -> torch.Tensor:
        """Bins ``(n, C, T)``; the first ``prefix.shape[2]`` steps are ``prefix`` (given, not drawn)."""
        from ..training.progress import progress_bar

        was_training = self.training
        self.eval()
        C = self.shape[0]
        q = torch.zeros(n, C, T, dtype=torch.long, device=self.device)
        t0 = 0
        if prefix is not None:
            t0 = prefix.shape[2]
            q[:, :, :t0] = prefix
        try:
            with torch.inference_mode(), progress_bar("sampling (wavenet)", T - t0, progress=progress) as bar:
                if cache:
                    self._sample_cached(q, t0, generator, bar)
                else:
                    for t in range(t0, T):
                        logits = self.net(self._net_input(q[:, :, :t + 1]))[:, :, :, t]   # (n, C, K)
                        q[:, :, t] = self._draw(logits, self._uniform((n, C), generator))
                        bar.update(1)
        finally:
            self.train(was_training)
        return q

    def _sample_cached(self, q: torch.Tensor, t0: int, generator, bar) -> None:
        """Fill ``q[:, :, t0:]`` step by step with per-layer input buffers: layer ``l``'s buffer holds its inputs
        at all steps so far (left zero padding of its convolution's reach), so the output at step ``t`` is one
        convolution over the last ``(k-1) d + 1`` columns. Exact: the same arithmetic as the full pass."""
        net, n, (C, T) = self.net, q.shape[0], (q.shape[1], q.shape[2])
        u = self._net_input(q)                                                   # (n, C, T) shifted inputs
        convs = [net.first] + [b.conv for b in net.blocks]
        bufs = [torch.zeros(n, conv.in_channels, conv.left + T, device=q.device) for conv in convs]

        def run(t: int) -> torch.Tensor:
            """Push the input of position ``t`` through every layer; the ``(n, C, K)`` outputs at ``t``."""
            first = net.first
            bufs[0][:, :, first.left + t] = u[:, :, t]
            h = first.step(bufs[0][:, :, :first.left + t + 1])                  # (n, ch, 1)
            total = 0.0
            for i, b in enumerate(net.blocks, start=1):
                bufs[i][:, :, b.conv.left + t] = h[:, :, 0]
                r, s = b.gate(b.conv.step(bufs[i][:, :, :b.conv.left + t + 1]))
                h = (h + r) * math.sqrt(0.5)
                total = total + s
            return net.head(total)[:, :, :, 0]

        if t0 > 0:  # the given prefix: fill the buffers with one full pass over it (same arithmetic as run())
            h = net.first(u[:, :, :t0])
            bufs[0][:, :, net.first.left:net.first.left + t0] = u[:, :, :t0]
            for i, b in enumerate(net.blocks, start=1):
                bufs[i][:, :, b.conv.left:b.conv.left + t0] = h
                h, _ = b(h)
        for t in range(t0, T):
            logits = run(t)
            q[:, :, t] = self._draw(logits, self._uniform((n, C), generator))
            if t + 1 < T:  # the input at position t + 1 is the step just drawn
                u[:, :, t + 1] = -1.0 + (2.0 * q[:, :, t].float() + 1.0) / self.config.bins
            bar.update(1)

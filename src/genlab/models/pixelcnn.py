"""Gated PixelCNN (``pixelcnn``, ``cpixelcnn``): an autoregressive image model with an exact likelihood.

van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders": a vertical stack (rows above)
and a horizontal stack (pixels to the left in the current row) of gated layers ``tanh(a) * sigmoid(b)``, which
together see every earlier pixel (no blind spot); the first layer is of mask type A (the current sub-pixel is
hidden), the others of type B; the horizontal stack is residual. Sub-pixels are ordered in raster order and,
within a pixel, channel by channel (R, then G, then B): the channel masks split every feature map of the
horizontal stack into ``C`` groups, and group ``g`` at the current pixel sees groups ``< g`` (type A) or
``<= g`` (type B).

Data and heads. Pixel values are discrete: with ``data_info["norm"]`` of shift 0 and scale ``S`` (8-bit images:
``S = 255``, the built-in ``digits``: ``S = 16``), model values ``x`` are levels ``q = x * S`` in ``0..S``.

* ``head="softmax"``: a ``S + 1``-way softmax per sub-pixel (256-way for 8-bit images);
* ``head="bernoulli"``: one logit per sub-pixel for binarised data, model values exactly 0 or 1 (binarise
  beforehand, e.g. ``x >= 0.5``; genlab does not threshold for you);
* ``head="logistic_mixture"``: a discretised mixture of ``n_mix`` logistics per sub-pixel (PixelCNN++, Salimans et
  al. 2017): level ``q`` has centre ``x_q = 2 q / S - 1`` in ``[-1, 1]`` and gets the mixture's mass on
  ``[x_q - 1/S, x_q + 1/S]``, the first level everything below ``x_0 + 1/S`` and the last everything above
  ``x_S - 1/S`` (the edge cases at 0 and 255), so the ``S + 1`` probabilities sum to 1 exactly (they telescope).
  Channels stay autoregressive (each sub-pixel has its own mixture, conditioned on the earlier channels by the
  masks), not PixelCNN++'s shared mixture with a linear channel coupling; ``3 n_mix`` outputs per sub-pixel
  instead of ``S + 1``;
* ``head="auto"`` (default): ``bernoulli`` when the data has 2 levels (scale 1), else ``softmax``.

Values that are not levels (``|x * S - round(x * S)| > 1e-3``, or outside ``0..S``) are refused with a one-line
:class:`~genlab.errors.DataError`.

Likelihood. ``log_likelihood(x)`` is the exact ``log p(x) = sum_i log p(x_i | x_<i)`` in nats per image (the
probability of the discrete levels, so it is comparable with a Bernoulli VAE's bound on binarised data);
``bits_per_dim(x) = -log p(x) / (C H W ln 2)``. ``elbo`` returns the same value (the bound is exact).
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
from ..errors import ConfigError, DataError
from ..registry import register_model
from .base import GenerativeModel, OptimizerSpec
from .vae import check_labels

log = logging.getLogger(__name__)

#: largest number of levels per sub-pixel the softmax head is built for
MAX_LEVELS = 1024
#: how far ``x * scale`` may be from an integer level (float32 rounding of ``k / 255``)
LEVEL_TOL = 1e-3


@dataclass
class PixelCNNConfig:
    """Gated PixelCNN settings.

    ``head``: ``auto``, ``bernoulli`` or ``softmax`` (see the module docstring). ``channels``: feature maps of
    each stack (a multiple of the image channels ``C``). ``layers``: gated layers after the first (type A)
    one. ``kernel``: width of the gated layers' convolutions (odd); ``first_kernel``: of the first layer.
    ``head_channels``: width of the two-layer 1x1 output network. ``n_mix``: logistic components per sub-pixel
    (``head=logistic_mixture``). ``dropout``: on the gated output of each horizontal-stack layer (training only;
    sampling and likelihoods run in eval mode). ``lr``/``weight_decay``: Adam.
    """

    head: Literal["auto", "bernoulli", "softmax", "logistic_mixture"] = "auto"
    channels: int = 64
    layers: int = 7
    kernel: int = 3
    first_kernel: int = 7
    head_channels: int = 128
    n_mix: int = 5
    dropout: float = 0.0
    lr: float = 1e-3
    weight_decay: float = 0.0

    def __post_init__(self):
        check(self.channels >= 1, f"channels must be >= 1, got {self.channels}")
        check(self.layers >= 0, f"layers must be >= 0, got {self.layers}")
        for name in ("kernel", "first_kernel"):
            k = getattr(self, name)
            check(k >= 1 and k % 2 == 1, f"{name} must be an odd integer >= 1, got {k}")
        check(self.head_channels >= 1, f"head_channels must be >= 1, got {self.head_channels}")
        check(self.n_mix >= 1, f"n_mix must be >= 1, got {self.n_mix}")
        check(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")


# -- masked building blocks -------------------------------------------------------------------------------------
def _groups(n: int, colours: int) -> torch.Tensor:
    """Colour group of each of ``n`` feature maps: contiguous blocks, ``(n,)`` in ``0..colours-1``."""
    return torch.arange(n) * colours // n


def _channel_mask(out_groups: torch.Tensor, in_groups: torch.Tensor, strict: bool) -> torch.Tensor:
    """``(out, in)`` 0/1 mask: output group ``g`` sees input groups ``< g`` (strict, type A) or ``<= g`` (B)."""
    o, i = out_groups[:, None], in_groups[None, :]
    return (i < o if strict else i <= o).float()


class _MaskedConv(nn.Conv2d):
    """A conv whose weight is multiplied by a fixed 0/1 mask (a buffer) on every call."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int], mask: torch.Tensor):
        super().__init__(c_in, c_out, kernel)
        self.register_buffer("mask", mask.reshape(c_out, c_in, *kernel), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias)


def _horizontal(c_in: int, c_out: int, k: int, in_groups, out_groups, strict: bool) -> _MaskedConv:
    """``1 x (k//2 + 1)`` conv over the current pixel and the ``k//2`` to its left (input padded on the left);
    all channels of the pixels to the left, the channel mask at the current pixel (its last column)."""
    mask = torch.ones(c_out, c_in, 1, k // 2 + 1)
    mask[:, :, 0, -1] = _channel_mask(out_groups, in_groups, strict)
    return _MaskedConv(c_in, c_out, (1, k // 2 + 1), mask)


def _pointwise(c_in: int, c_out: int, in_groups, out_groups) -> _MaskedConv:
    """1x1 conv of the horizontal stream: type-B channel mask (a group sees its own and earlier groups)."""
    return _MaskedConv(c_in, c_out, (1, 1), _channel_mask(out_groups, in_groups, strict=False))


def _down(v: torch.Tensor) -> torch.Tensor:
    """Shift down one row: row ``i`` of the result is row ``i - 1`` of ``v`` (zeros in row 0)."""
    return F.pad(v, (0, 0, 1, 0))[:, :, :-1]


def _gate(a: torch.Tensor) -> torch.Tensor:
    t, s = a.chunk(2, dim=1)
    return torch.tanh(t) * torch.sigmoid(s)


#: clamp of the logistic components' log-scales: below as PixelCNN++ does; above, a scale of e^7 is flat over the
#: whole range anyway (and a finite bin width in standard units keeps the log-probabilities' gradients finite)
MIN_LOG_SCALE, MAX_LOG_SCALE = -7.0, 7.0


def _log1mexp(d: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(-d))`` for ``d > 0``, accurate for small and large ``d`` (Maechler 2012)."""
    return torch.where(d < math.log(2), torch.log(-torch.expm1(-d)), torch.log1p(-torch.exp(-d)))


def logistic_mixture_log_prob(params: torch.Tensor, q: torch.Tensor, levels: int) -> torch.Tensor:
    """Log-probability of level ``q`` under a discretised mixture of logistics.

    Parameters
    ----------
    params : Tensor of shape (..., 3 M)
        Mixture logits, means (in the ``[-1, 1]`` scale of the levels' centres ``x_q = 2 q / (L - 1) - 1``) and
        log-scales (clamped to ``[MIN_LOG_SCALE, MAX_LOG_SCALE]`` = ``[-7, 7]``) of ``M`` components.
    q : Tensor of shape (...)
        Integer levels in ``0..levels-1`` (broadcast against ``params``' leading shape).
    levels : int
        ``L``, the number of levels (``>= 2``).

    Returns
    -------
    Tensor of shape (...)
        ``log sum_m pi_m P_m(q)`` with ``P_m(q) = F_m(x_q + h) - F_m(x_q - h)``, ``h = 1 / (L - 1)``, ``F_m`` the
        logistic CDF; ``F_m(x_0 - h)`` is taken as 0 and ``F_m(x_{L-1} + h)`` as 1, so the ``L`` probabilities sum
        to 1. ``log(s(a) - s(b)) = log s(a) + log s(-b) + log(1 - exp(b - a))`` keeps tiny bins finite.
    """
    w, mu, ls = params.chunk(3, dim=-1)  # (..., M) each
    inv = torch.exp(-ls.clamp(MIN_LOG_SCALE, MAX_LOG_SCALE))
    half = 1.0 / (levels - 1)
    qf = q.to(params.dtype).unsqueeze(-1)  # (..., 1)
    x = qf * (2.0 * half) - 1.0
    a = (x + half - mu) * inv  # upper edge, standardised
    b = (x - half - mu) * inv  # lower edge
    mid = F.logsigmoid(a) + F.logsigmoid(-b) + _log1mexp(2.0 * half * inv)
    lp = torch.where(qf <= 0, F.logsigmoid(a), torch.where(qf >= levels - 1, F.logsigmoid(-b), mid))
    return torch.logsumexp(torch.log_softmax(w, dim=-1) + lp, dim=-1)


class _GatedLayer(nn.Module):
    """One gated layer of both stacks.

    Vertical: ``v' = gate(conv_v(v) + e_y)``, ``conv_v`` of size ``(k//2 + 1) x k`` over the rows ``<= i`` (the
    vertical features of row ``i`` never reach row ``i`` of the horizontal stack: they enter it shifted down).
    Horizontal: ``h' = h + W_1x1 gate(conv_h(h) + W_v2h down(conv_v(v)) + e_y)`` (no residual in the first
    layer, whose input is the image).
    """

    def __init__(self, c_in: int, p: int, k: int, colours: int, first: bool, num_classes: int | None,
                 dropout: float = 0.0):
        super().__init__()
        self.k, self.first = k, first
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        g_in = _groups(c_in, colours)
        g_p = _groups(p, colours)
        g_2p = torch.cat([g_p, g_p])  # tanh half and sigmoid half share the groups
        self.v_conv = nn.Conv2d(c_in, 2 * p, (k // 2 + 1, k))
        self.v2h = nn.Conv2d(2 * p, 2 * p, 1)  # from rows above only: no channel mask needed
        self.h_conv = _horizontal(c_in, 2 * p, k, g_in, g_2p, strict=first)
        self.h_out = _pointwise(p, p, g_p, g_p)
        self.embed = nn.Embedding(num_classes, 2 * p) if num_classes else None

    def vertical(self, v: torch.Tensor, e: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(v', v2h)``: the next vertical features and their contribution to the horizontal stack at the same
        positions (already shifted down one row), each ``(B, ., H, W)``."""
        k = self.k
        a = self.v_conv(F.pad(v, (k // 2, k // 2, k // 2, 0)))  # (B, 2p, H, W): rows i - k//2 .. i
        v2h = self.v2h(_down(a))
        if e is not None:
            a = a + e
        return _gate(a), v2h

    def horizontal(self, h: torch.Tensor, v2h: torch.Tensor, e: torch.Tensor | None) -> torch.Tensor:
        a = self.h_conv(F.pad(h, (self.k // 2, 0, 0, 0))) + v2h  # (B, 2p, H, W)
        if e is not None:
            a = a + e
        out = self.h_out(self.drop(_gate(a)))
        return out if self.first else h + out


class GatedPixelCNNNet(nn.Module):
    """The network: image levels in ``[-1, 1]`` ``(B, C, H, W)`` -> ``(B, C, K, H, W)`` outputs (``K`` = 1 for the
    Bernoulli head, ``3 n_mix`` for the logistic mixture, else the number of levels)."""

    def __init__(self, colours: int, p: int, layers: int, k: int, k_first: int, head_channels: int, k_out: int,
                 num_classes: int | None, dropout: float = 0.0):
        super().__init__()
        if p % colours:
            raise ConfigError(f"pixelcnn: channels ({p}) must be a multiple of the image channels ({colours}) "
                              "(one group of feature maps per colour); e.g. model.channels="
                              f"{max(colours, p // colours * colours)}")
        hc = max(colours, head_channels // colours * colours)
        self.colours, self.k_out = colours, k_out
        self.layers = nn.ModuleList(
            [_GatedLayer(colours, p, k_first, colours, True, num_classes, dropout)]
            + [_GatedLayer(p, p, k, colours, False, num_classes, dropout) for _ in range(layers)])
        g_p, g_hc = _groups(p, colours), _groups(hc, colours)
        g_out = torch.arange(colours * k_out) // k_out  # output channel (c, level) -> group c
        self.head = nn.ModuleList([_pointwise(p, hc, g_p, g_hc), _pointwise(hc, colours * k_out, g_hc, g_out)])

    def _embeds(self, y: torch.Tensor | None) -> list:
        if y is None:
            return [None] * len(self.layers)
        return [layer.embed(y)[:, :, None, None] for layer in self.layers]  # (B, 2p, 1, 1) each

    def vertical(self, x: torch.Tensor, y: torch.Tensor | None) -> list[torch.Tensor]:
        """The vertical stack's contributions to each layer's horizontal stack, ``[(B, 2p, H, W)] * layers``."""
        out, v = [], x
        for layer, e in zip(self.layers, self._embeds(y)):
            v, v2h = layer.vertical(v, e)
            out.append(v2h)
        return out

    def horizontal(self, x: torch.Tensor, v2h: list[torch.Tensor], y: torch.Tensor | None) -> torch.Tensor:
        """Logits ``(B, C, K, H', W')`` from the image (or a crop of rows/columns that ends at the current pixel)
        and the matching crop of :meth:`vertical`'s output."""
        h = x
        for layer, vh, e in zip(self.layers, v2h, self._embeds(y)):
            h = layer.horizontal(h, vh, e)
        out = self.head[1](F.relu(self.head[0](h)))  # (B, C * K, H, W)
        b, _, hh, ww = out.shape
        return out.view(b, self.colours, self.k_out, hh, ww)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.horizontal(x, self.vertical(x, y), y)


@register_model("pixelcnn", PixelCNNConfig, "Gated PixelCNN: exact likelihood (nats, bits/dim), pixel-wise sampling")
class PixelCNN(GenerativeModel):
    """Gated PixelCNN with a softmax or logistic-mixture (discrete levels) or Bernoulli (binarised) head; see the
    module docstring.

    Loss: the mean over the batch of ``-log p(x) / (C H W)`` (nats per dimension); logged ``nll`` (nats per
    image) and ``bpd`` (bits per dimension).
    """

    has_encoder = False
    has_decoder = False
    can_reconstruct = False
    can_sample = True
    has_likelihood = True
    input_kinds = ("image",)

    def __init__(self, config: PixelCNNConfig, data_info: dict):
        super().__init__(config, data_info)
        c = config
        self.levels, self.level_scale = self._levels(c.head, data_info)
        if c.head == "logistic_mixture":
            self.head = "logistic_mixture"
        else:
            self.head = "bernoulli" if self.levels == 2 and c.head != "softmax" else "softmax"
        self.num_classes = self._classes()
        colours = self.shape[0]
        k_out = {"bernoulli": 1, "softmax": self.levels, "logistic_mixture": 3 * c.n_mix}[self.head]
        self.net = GatedPixelCNNNet(colours, c.channels, c.layers, c.kernel, c.first_kernel, c.head_channels,
                                    k_out, self.num_classes, c.dropout)

    # -- data ----------------------------------------------------------------------------------------------------
    def _levels(self, head: str, data_info: dict) -> tuple[int, float]:
        """``(levels, scale)``: the number of discrete values per sub-pixel and the factor from model values to
        level indices (``q = x * scale``)."""
        if head == "bernoulli":
            return 2, 1.0
        norm = data_info.get("norm") or {}
        shift = torch.as_tensor(norm.get("shift", 0.0), dtype=torch.float64)
        scale = torch.as_tensor(norm.get("scale", 255.0), dtype=torch.float64)
        s = float(scale.reshape(-1)[0])
        ok = (bool((shift == 0).all()) and bool((scale == s).all()) and s == round(s) and 1 <= s < MAX_LEVELS)
        if not ok:
            raise ConfigError(f"{self.registry_name}: head={head!r} needs integer pixel levels (data norm shift 0 and "
                              f"one integer scale S in 1..{MAX_LEVELS - 1}: levels 0..S, e.g. 8-bit images S=255), "
                              f"got shift={shift.tolist()}, scale={scale.tolist()}; load quantised images or use "
                              "head=bernoulli on binarised data")
        return int(s) + 1, s

    def _classes(self) -> int | None:
        return None

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Level indices ``(B, C, H, W)`` int64 in ``0..levels-1`` of model-space images; values that are not
        levels are a one-line DataError."""
        x = self.check_input(x)
        q = x * self.level_scale
        r = torch.round(q)
        bad = ~torch.isfinite(q) | ((q - r).abs() > LEVEL_TOL) | (r < 0) | (r > self.levels - 1)
        if bool(bad.any()):
            v = float(x[bad][0])
            what = ("0 or 1 (binarise the images, e.g. x >= 0.5)" if self.head == "bernoulli" and self.level_scale == 1
                    else f"levels k / {self.level_scale:g} for k in 0..{self.levels - 1}")
            raise DataError(f"{self.registry_name}: pixel values must be {what}, got {v:.6g}; quantise the images "
                            "(values outside the quantisation range cannot be scored or trained on)")
        return r.long()

    def _net_input(self, q: torch.Tensor) -> torch.Tensor:
        return q.float() * (2.0 / (self.levels - 1)) - 1.0  # (B, C, H, W) in [-1, 1]

    def _labels(self, labels, n: int, what: str) -> torch.Tensor | None:
        if labels is not None:
            raise ConfigError(f"model {self.registry_name!r} is unconditional and takes no labels; "
                              "train a 'cpixelcnn' to condition on labels")
        return None

    # -- likelihood ----------------------------------------------------------------------------------------------
    def _log_prob_levels(self, logits: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Per-image ``sum log p(q_i | q_<i)`` from logits ``(B, C, K, H, W)`` and levels ``(B, C, H, W)``."""
        if self.head == "bernoulli":
            lp = -F.binary_cross_entropy_with_logits(logits[:, :, 0], q.float(), reduction="none")
        elif self.head == "logistic_mixture":
            lp = logistic_mixture_log_prob(logits.permute(0, 1, 3, 4, 2), q, self.levels)  # (B, C, H, W)
        else:
            lp = torch.log_softmax(logits, dim=2).gather(2, q.unsqueeze(2)).squeeze(2)
        return lp.flatten(1).sum(1)  # (B,)

    def _log_prob(self, q: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self._log_prob_levels(self.net(self._net_input(q), y), q)

    def _ll(self, x: torch.Tensor, labels, batch_size: int) -> torch.Tensor:
        q = self.quantize(x)
        y = self._labels(labels, len(q), "log_likelihood")
        ys = [None] * math.ceil(len(q) / batch_size) if y is None else list(y.to(q.device).split(batch_size))
        return torch.cat([self._log_prob(qb, yb) for qb, yb in zip(q.split(batch_size), ys)]) if len(q) else \
            torch.zeros(0, device=q.device)

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, k: int | None = None, labels: torch.Tensor | None = None, *,
                       generator: torch.Generator | None = None, batch_size: int = 256) -> torch.Tensor:
        """Exact ``log p(x)`` in nats per image.

        Parameters
        ----------
        x : Tensor of shape (B, C, H, W)
            Model-space images whose values are levels (see the module docstring).
        k, generator
            Ignored (the likelihood is exact, no sampling); accepted so callers of the VAE's IWAE estimate
            work unchanged.
        labels : Tensor of shape (B,), optional
            Conditional models: ``log p(x | y)``; without labels ``log p(x) = log sum_y p(x | y) / K``.
        batch_size : int
            Images per forward pass.

        Returns
        -------
        Tensor of shape (B,)
        """
        self.check_importance_samples(k, exact=True)
        return self._ll(x, labels, batch_size)

    @torch.no_grad()
    def elbo(self, x: torch.Tensor, labels: torch.Tensor | None = None, *, generator: torch.Generator | None = None,
             batch_size: int = 256) -> torch.Tensor:
        """The exact ``log p(x)`` (an autoregressive model's bound is tight), nats per image ``(B,)``."""
        return self._ll(x, labels, batch_size)

    @torch.no_grad()
    def bits_per_dim(self, x: torch.Tensor, labels: torch.Tensor | None = None, *, batch_size: int = 256
                     ) -> torch.Tensor:
        """``-log2 p(x) / (C H W)`` per image, ``(B,)``."""
        return -self._ll(x, labels, batch_size) / (self.dim * math.log(2))

    # -- training ------------------------------------------------------------------------------------------------
    def training_step(self, batch: dict, step: int, optimizer: str = "main") -> dict:
        q = self.quantize(batch["x"])
        y = self._train_labels(batch)
        nll = -self._log_prob(q, y)  # (B,) nats per image
        per_dim = nll / self.dim
        return {"loss": per_dim.mean(), "nll": nll.mean().detach(), "bpd": per_dim.mean().detach() / math.log(2)}

    def _train_labels(self, batch: dict) -> torch.Tensor | None:
        return None

    def configure_optimizers(self) -> dict[str, OptimizerSpec]:
        c = self.config
        return {"main": OptimizerSpec(torch.optim.Adam(self.parameters(), lr=c.lr, weight_decay=c.weight_decay))}

    # -- sampling ------------------------------------------------------------------------------------------------
    def _sample_labels(self, n: int, labels, generator) -> torch.Tensor | None:
        return self._labels(labels, n, "sample")

    def _uniform(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        dev = "cpu" if generator is None or generator.device.type == "cpu" else generator.device
        return torch.rand(n, generator=generator, device=dev, dtype=torch.float64).to(self.device)

    def _draw(self, logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Levels ``(B,)`` from logits ``(B, K)`` by inverting the CDF at uniforms ``u`` ``(B,)``."""
        if self.head == "bernoulli":
            return (u < torch.sigmoid(logits[:, 0].double())).long()
        if self.head == "logistic_mixture":  # the probabilities of all levels, then the same inversion
            lv = torch.arange(self.levels, device=logits.device)
            logits = logistic_mixture_log_prob(logits.double()[:, None, :], lv[None, :], self.levels)  # (B, L)
        cdf = torch.softmax(logits.double(), dim=1).cumsum(1)  # (B, K)
        return (cdf < u[:, None]).sum(1).clamp(max=self.levels - 1)

    @torch.no_grad()
    def sample(self, n: int, *, labels: torch.Tensor | None = None, generator: torch.Generator | None = None,
               cache: bool = True, progress: bool | None = None, batch_size: int = 1024,
               size: tuple[int, int] | None = None) -> torch.Tensor:
        """Draw ``n`` images, sub-pixel by sub-pixel in raster order (within a pixel channel by channel).

        Parameters
        ----------
        n : int
            Number of images (``>= 1``).
        labels : Tensor of shape (n,), optional
            Conditional models: the classes (drawn uniformly from ``generator`` when None).
        generator : torch.Generator, optional
            Source of the uniforms; one per sub-pixel and image, drawn in sampling order.
        cache : bool
            ``True`` (default): per row, the vertical stack runs once on the rows above and only the horizontal
            stack runs per sub-pixel, on the current row from the left edge of its receptive field
            (``first_kernel // 2 + layers * (kernel // 2)`` columns to the left) to the current column. This is
            exact: no layer looks below the current row or (horizontal stack) right of the current column or
            beyond that reach to the left, so the outputs at the current sub-pixel equal a full forward pass (up
            to float rounding). ``False``: a full forward pass per
            sub-pixel (the reference).
        progress : bool or None
            The progress display switch of :func:`genlab.training.progress.progress_enabled`.
        batch_size : int
            Images sampled together.
        size : (H, W), optional
            The image size asked for; only the trained one is accepted (the network is convolutional, but its
            conditionals were fitted at that size: a one-line ConfigError otherwise).

        Returns
        -------
        Tensor of shape (n, C, H, W)
            Model-space images (levels ``k / scale``).
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"number of samples must be an integer >= 1, got {n!r}")
        if size is not None and tuple(size) != tuple(self.shape[1:]):
            raise ConfigError(f"{self.registry_name} was trained on {self.shape[1]}x{self.shape[2]} images and samples "
                              f"only at that size, got size={tuple(size)}; train a model at the size you need")
        y = self._sample_labels(n, labels, generator)
        from ..training.progress import progress_bar

        was_training = self.training
        self.eval()
        C, H, W = self.shape
        try:
            with torch.inference_mode(), progress_bar("sampling (pixelcnn)", n * H, progress=progress) as bar:
                out = []
                for start in range(0, n, batch_size):
                    yb = None if y is None else y[start:start + batch_size].to(self.device)
                    b = min(batch_size, n - start)
                    us = self._uniform(b * C * H * W, generator).view(H, W, C, b)
                    step = self._sample_cached if cache else self._sample_naive
                    out.append(step(b, yb, us, bar))
        finally:
            self.train(was_training)
        return torch.cat(out).float() / self.level_scale

    @torch.no_grad()
    def complete(self, x: torch.Tensor, rows: int, *, labels: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, progress: bool | None = None) -> torch.Tensor:
        """Inpaint the bottom of images: keep the first ``rows`` rows of ``x`` and sample the rest from
        ``p(bottom | top)``.

        Exact: the model's order is raster order, so sampling the remaining sub-pixels one by one (cached, as
        :meth:`sample`) given the kept ones draws from the model's conditional distribution of the bottom rows given
        the top rows. ``rows=0`` is :meth:`sample` with the same generator. (A hole elsewhere, with observed pixels
        after it, has no such exact sampler in this order.)

        Parameters
        ----------
        x : Tensor of shape (B, C, H, W)
            Model-space images (levels, as for :meth:`log_likelihood`); rows ``rows:`` are ignored.
        rows : int
            Rows kept from the top, ``0 <= rows <= H``.
        labels : Tensor of shape (B,), optional
            Conditional models: the classes (drawn uniformly from ``generator`` when None).

        Returns
        -------
        Tensor of shape (B, C, H, W): the first ``rows`` rows equal to ``x``'s, the others sampled.
        """
        C, H, W = self.shape
        if isinstance(rows, bool) or not isinstance(rows, int) or not 0 <= rows <= H:
            raise ConfigError(f"rows must be an integer in 0..{H} (rows kept from the top), got {rows!r}")
        q0 = self.quantize(x)
        y = self._sample_labels(len(q0), labels, generator)
        from ..training.progress import progress_bar

        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode(), progress_bar("inpainting (pixelcnn)", len(q0) * (H - rows),
                                                      progress=progress) as bar:
                us = self._uniform(len(q0) * C * H * W, generator).view(H, W, C, len(q0))
                q = self._sample_cached(len(q0), None if y is None else y.to(self.device), us, bar,
                                        start=q0.to(self.device), first_row=rows)
        finally:
            self.train(was_training)
        return q.float() / self.level_scale

    def _sample_naive(self, b: int, y, us: torch.Tensor, bar) -> torch.Tensor:
        C, H, W = self.shape
        q = torch.zeros(b, C, H, W, dtype=torch.long, device=self.device)
        for i in range(H):
            for j in range(W):
                for c in range(C):
                    logits = self.net(self._net_input(q), y)[:, c, :, i, j]  # (b, K)
                    q[:, c, i, j] = self._draw(logits, us[i, j, c])
            bar.advance(b)
        return q

    def _sample_cached(self, b: int, y, us: torch.Tensor, bar, *, start: torch.Tensor | None = None,
                       first_row: int = 0) -> torch.Tensor:
        """Levels ``(b, C, H, W)``: rows before ``first_row`` taken from ``start``, the others sampled in order."""
        C, H, W = self.shape
        q = torch.zeros(b, C, H, W, dtype=torch.long, device=self.device)
        if first_row:
            q[:, :, :first_row] = start[:, :, :first_row]
        reach = self.config.first_kernel // 2 + self.config.layers * (self.config.kernel // 2)  # columns to the left
        for i in range(first_row, H):
            v2h = [v[:, :, i:i + 1] for v in self.net.vertical(self._net_input(q[:, :, :i + 1]), y)]  # row i
            for j in range(W):
                lo = max(0, j - reach)  # the horizontal stack's receptive field at column j: columns lo..j
                vj = [v[:, :, :, lo:j + 1] for v in v2h]
                for c in range(C):
                    row = self._net_input(q[:, :, i:i + 1, lo:j + 1])  # (b, C, 1, j + 1 - lo)
                    logits = self.net.horizontal(row, vj, y)[:, c, :, 0, -1]  # (b, K)
                    q[:, c, i, j] = self._draw(logits, us[i, j, c])
            bar.advance(b)
        return q


@register_model("cpixelcnn", PixelCNNConfig, "Class-conditional gated PixelCNN: label embedding in every gated layer")
class CPixelCNN(PixelCNN):
    """Gated PixelCNN conditioned on class labels: a learned embedding of ``y`` (one per layer, ``2 * channels``
    values) is added to the pre-activations of both stacks in every gated layer.

    ``log_likelihood(x, labels=y)`` is ``log p(x | y)``; without labels ``log p(x) = log sum_y p(x | y) / K``
    (uniform label prior, K forward passes). ``sample`` draws labels uniformly when none are given.
    """

    conditional = True

    def _classes(self) -> int:
        return self.labelled_classes("a 'pixelcnn'")

    def _labels(self, labels, n: int, what: str) -> torch.Tensor | None:
        if labels is None:
            return None
        return check_labels(labels, self.num_classes, n, f"{self.registry_name}.{what}").to(self.device)

    def _train_labels(self, batch: dict) -> torch.Tensor:
        if batch.get("y") is None:
            raise DataError("cpixelcnn trains on labelled data; give labels (y) or train a 'pixelcnn'")
        return self._labels(batch["y"], len(batch["x"]), "training_step")

    def _sample_labels(self, n: int, labels, generator) -> torch.Tensor:
        if labels is None:
            dev = "cpu" if generator is None or generator.device.type == "cpu" else generator.device
            return torch.randint(self.num_classes, (n,), generator=generator, device=dev).to(self.device)
        return self._labels(labels, n, "sample")

    def _ll(self, x: torch.Tensor, labels, batch_size: int) -> torch.Tensor:
        if labels is not None:
            return super()._ll(x, labels, batch_size)
        q = self.quantize(x)
        per_class = []
        for k in range(self.num_classes):
            yk = torch.full((len(q),), k, dtype=torch.long, device=q.device)
            per_class.append(torch.cat([self._log_prob(qb, yb) for qb, yb in
                                        zip(q.split(batch_size), yk.split(batch_size))]))
        return torch.logsumexp(torch.stack(per_class), 0) - math.log(self.num_classes)

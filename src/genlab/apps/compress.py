"""Lossy compression with an autoencoder: latent codes entropy-coded under a learned prior.

Two coders share one file format (``.glc``) and one estimator, :class:`Compressor`:

``coder="ans"`` (default): learned transform coding (Ballé, Laparra & Simoncelli 2017). After the autoencoder
is trained, encoder, decoder and a *factorised learned density* ``p_j`` per latent dimension
(:class:`FactorizedDensity`, Ballé et al. 2018, appendix 6.1) are fine-tuned together with the Trainer on the
rate-distortion loss (per sample, model space)::

    loss = R + lmbda * D,   R = -sum_j log2 P_j(y_j),   D = sum over the sample's values of (x - x_hat)^2
    P_j(y) = c_j(y + 1/2) - c_j(y - 1/2)   (c_j the cumulative of p_j: the mass of the unit bin around y)

where, in training, ``y = z + u`` (``u ~ U(-1/2, 1/2)``, the rate's proxy for rounding) and the decoder sees the
rounded code through a straight-through estimator. At coding time each code ``z_j`` is rounded to an integer
``q_j`` (clipped to the support ``[code_min_j, code_max_j]`` seen in training, widened by 2), and the integers
of all samples are coded with an ANS stack coder from ``constriction`` under the probability tables
``P_j(q)`` (``code_pmf_``, computed once at the end of ``fit`` and stored with the estimator, so encoder and
decoder use the same numbers). The payload is within a few bytes of the ideal information content
``-sum log2 P`` (:func:`information_content`).

``coder="fixed"``: each latent dimension is quantised uniformly with ``2**bits`` levels on the range
``[lo_j, hi_j]`` of the training codes (min/max, or the ``clip_percentile`` percentiles)::

    step_j = (hi_j - lo_j) / (2**bits - 1)           (step_j = 1 when hi_j == lo_j)
    q      = clip(round((z - lo_j) / step_j), 0, 2**bits - 1)      # integer code
    z_hat  = lo_j + q * step_j                                       # dequantised code

and the codes are packed at ``bits`` bits each (no entropy coding).

File format (``.glc``, little-endian; version 2)::

    offset  size  field
    0       4     magic b"GLCF"
    4       1     format version (2)
    5       1     coder: 0 fixed-length codes, 1 ANS under the learned prior
    6       1     bits per code, 1..16 (fixed coder; 0 for ANS)
    7       1     ndim of one sample (1 tabular, 3 images)
    8       8     N, number of samples (uint64)
    16      4     L, latent dimension (uint32)
    20      4     P, payload bytes (uint32)
    24      4*nd  sample shape (uint32 each)
    ..      16    model hash: SHA-256 over the model (name, config, safetensors state), the quantiser ranges and
                  the probability tables, truncated to 16 bytes
    ..      4     CRC-32 of the header bytes before it followed by the payload
    ..      P     payload. fixed: the N*L codes, row-major, each as ``bits`` bits MSB first, packed tightly
                  (``numpy.packbits``), P = ceil(N * L * bits / 8). ANS: constriction's compressed words
                  (uint32, little-endian) of the N*L symbols ``q - code_min_j``, row-major

The header is 56 bytes for images and 48 for tabular rows; a file holds ``header + P`` bytes exactly.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import TensorDataset
from ..errors import CheckpointError, ConfigError, DataError
from ..models.base import GenerativeModel, OptimizerSpec
from ._base import ModelTransformer

log = logging.getLogger(__name__)

MAGIC = b"GLCF"
FORMAT_VERSION = 2
HASH_BYTES = 16
MAX_BITS = 16
CODERS = ("ans", "fixed")
_CODER_ID = {"fixed": 0, "ans": 1}
#: most integer values one latent dimension may take under the ANS coder (wider supports are cut around the
#: median of the training codes; codes outside are clipped)
MAX_SUPPORT = 1024
#: largest rate-distortion trade-off. The loss ``R + lmbda * D`` is float32 (max 3.4e38): ``D`` is a sum of
#: squared errors per sample, up to ~1e5-1e7 for large images or badly fitted standardised rows early in
#: fine-tuning, and its gradients are larger still, so lmbda must stay far below 1e38 / 1e7; and past ~1e6 the
#: rate (tens to thousands of bits) is below float32's relative precision (6e-8) of ``lmbda * D`` at typical
#: errors, so a larger lmbda only means "no rate term" and can no longer be told apart from 1e6
MAX_LMBDA = 1e6
#: most fine-tuning epochs: the fine-tuning converges in tens of epochs (the bench uses 10-20); more than this is a
#: typo that would keep ``fit`` running practically forever
MAX_RD_EPOCHS = 100_000
_FIXED = struct.Struct("<4sBBBBQII")  # magic, version, coder, bits, ndim, N, latent dim, payload bytes
_CRC = struct.Struct("<I")


# ---------------------------------------------------------------------------- quantiser (pure functions)
def check_bits(bits) -> int:
    """``bits`` as an int in 1..16, else a one-line :class:`ConfigError`."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= int(bits) <= MAX_BITS:
        raise ConfigError(f"bits must be an integer in 1..{MAX_BITS}, got {bits!r}; e.g. bits=8")
    return int(bits)


def quant_step(lo: np.ndarray, hi: np.ndarray, bits: int) -> np.ndarray:
    """Per-dimension step ``(hi - lo) / (2**bits - 1)`` (1 where ``hi == lo``, so the code is always 0)."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    step = (hi - lo) / float(2 ** check_bits(bits) - 1)
    return np.where(step > 0, step, 1.0)


def quantize(z: np.ndarray, lo: np.ndarray, hi: np.ndarray, bits: int) -> np.ndarray:
    """Integer codes ``(N, L)`` (uint32) of latent values ``z`` ``(N, L)``; out-of-range values are clipped."""
    z = np.asarray(z, np.float64)
    q = np.rint((z - np.asarray(lo, np.float64)) / quant_step(lo, hi, bits))
    return np.clip(q, 0, 2 ** bits - 1).astype(np.uint32)


def dequantize(q: np.ndarray, lo: np.ndarray, hi: np.ndarray, bits: int) -> np.ndarray:
    """Latent values ``lo + q * step`` ``(N, L)`` float64 from integer codes ``q``."""
    return np.asarray(lo, np.float64) + np.asarray(q, np.float64) * quant_step(lo, hi, bits)


def pack_codes(q: np.ndarray, bits: int) -> bytes:
    """Pack integer codes (each ``< 2**bits``) into ``ceil(q.size * bits / 8)`` bytes, ``bits`` bits per code
    MSB first, in row-major order (8 bits = one byte per code, 16 bits = big-endian uint16)."""
    bits = check_bits(bits)
    flat = np.asarray(q).reshape(-1).astype(np.uint32)
    if flat.size and int(flat.max()) >= 2 ** bits:
        raise DataError(f"code {int(flat.max())} does not fit in {bits} bits")
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint32)
    bitmat = ((flat[:, None] >> shifts) & 1).astype(np.uint8)  # (n, bits), MSB first
    return np.packbits(bitmat.reshape(-1)).tobytes()


def unpack_codes(buf: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: ``count`` codes as a flat uint32 array."""
    bits = check_bits(bits)
    need = math.ceil(count * bits / 8)
    if len(buf) < need:
        raise DataError(f"payload holds {len(buf)} bytes but {count} codes of {bits} bits need {need}")
    flat = np.unpackbits(np.frombuffer(buf, np.uint8, count=need), count=count * bits)
    weights = (1 << np.arange(bits - 1, -1, -1, dtype=np.uint32))
    return flat.reshape(count, bits).astype(np.uint32) @ weights if count else np.zeros(0, np.uint32)



# ---------------------------------------------------------------------------- learned factorised prior
class FactorizedDensity(nn.Module):
    """A learned univariate density per channel (Ballé et al. 2018, "Variational image compression with a
    scale hyperprior", appendix 6.1): the cumulative ``c(y) = sigmoid(f_K(...f_1(y)))`` with
    ``f_k(x) = g(H_k x + b_k)``, ``H_k`` positive (softplus of a free matrix), ``g(x) = x + tanh(a) * tanh(x)``
    for the inner layers, so ``c`` is monotone in ``y`` whatever the weights.

    Parameters
    ----------
    channels : int
        Number of independent densities (the latent dimension).
    filters : tuple of int, default (3, 3, 3)
        Hidden widths of the cumulative's network.
    init_scale : float, default 10.0
        Initial width of the densities.
    generator : torch.Generator, optional
        For the initial biases (seeded fits give identical priors).
    """

    def __init__(self, channels: int, *, filters=(3, 3, 3), init_scale: float = 10.0,
                 generator: torch.Generator | None = None):
        super().__init__()
        f = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = math.log(math.expm1(1.0 / scale / f[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, f[i + 1], f[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, f[i + 1], 1, generator=generator) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, f[i + 1], 1)))

    def logits_cdf(self, y: torch.Tensor) -> torch.Tensor:
        """Logits of the cumulative at ``y`` ``(C, N)`` -> ``(C, N)``."""
        x = y.unsqueeze(1)  # (C, 1, N)
        for i, m in enumerate(self.matrices):
            x = torch.matmul(F.softplus(m), x) + self.biases[i]  # (C, f, N)
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x.squeeze(1)

    def bin_probability(self, y: torch.Tensor) -> torch.Tensor:
        """Mass of the unit bin ``[y - 1/2, y + 1/2]`` for codes ``y`` ``(B, C)`` -> ``(B, C)`` (floored at 1e-9).
        Computed on the side of the median where the sigmoids are small, for accuracy in the tails."""
        yt = y.t()  # (C, B)
        lower, upper = self.logits_cdf(yt - 0.5), self.logits_cdf(yt + 0.5)
        sign = -torch.sign(lower + upper).detach()
        p = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        return p.t().clamp_min(1e-9)


def probability_tables(density: FactorizedDensity, q_train: np.ndarray, *, margin: int = 2
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``(code_min (L,) int64, pmf (L, K) float64)``: per latent dimension the integer support
    ``[min - margin, max + margin]`` of the training integer codes ``q_train`` ``(N, L)`` (at most
    :data:`MAX_SUPPORT` values around the median) and the density's bin masses on it, normalised to sum 1
    (zero past each dimension's support)."""
    q = np.asarray(q_train, np.int64)
    lo, hi = q.min(0) - margin, q.max(0) + margin
    med = np.median(q, axis=0).astype(np.int64)
    wide = hi - lo + 1 > MAX_SUPPORT
    if wide.any():
        log.warning("Compressor: %d latent dimension(s) span more than %d integers; their codes are clipped",
                    int(wide.sum()), MAX_SUPPORT)
        lo = np.where(wide, np.maximum(lo, med - MAX_SUPPORT // 2), lo)
        hi = np.where(wide, lo + MAX_SUPPORT - 1, hi)
    width = hi - lo + 1
    k = int(width.max())
    grid = torch.from_numpy((lo[None, :] + np.arange(k)[:, None]).astype(np.float32))  # (K, L)
    with torch.no_grad():
        p = density.bin_probability(grid).double().t().numpy()  # (L, K)
    p = np.where(np.arange(k)[None, :] < width[:, None], p, 0.0)
    return lo.astype(np.int64), p / p.sum(1, keepdims=True)


# ---------------------------------------------------------------------------- entropy coding (constriction)
def _check_symbols(q: np.ndarray, code_min: np.ndarray, pmf: np.ndarray) -> np.ndarray:
    q = np.asarray(q)
    if q.ndim != 2 or q.shape[1] != len(code_min):
        raise DataError(f"codes must have shape (N, {len(code_min)}), got {q.shape}")
    s = q.astype(np.int64) - np.asarray(code_min, np.int64)[None, :]
    width = (pmf > 0).sum(1)
    if q.size and (s.min() < 0 or (s >= width[None, :]).any()):
        raise DataError("codes outside the prior's support; clip them with Compressor.transform")
    return s.astype(np.int32)


def ans_encode(q: np.ndarray, code_min: np.ndarray, pmf: np.ndarray) -> bytes:
    """ANS-code integer codes ``q`` ``(N, L)`` under the per-dimension tables ``pmf`` ``(L, K)`` (symbol
    ``q[i, j] - code_min[j]``), with constriction's ``AnsCoder`` and leakily quantised categorical models (every
    symbol of a table keeps a non-zero probability). Returns the compressed words as little-endian uint32 bytes."""
    import constriction
    s = _check_symbols(q, code_min, pmf)
    coder = constriction.stream.stack.AnsCoder()
    if s.size:
        probs = np.tile(np.asarray(pmf, np.float64), (len(s), 1))  # (N * L, K), row-major like s
        coder.encode_reverse(s.reshape(-1), constriction.stream.model.Categorical(perfect=False), probs)
    return coder.get_compressed().astype("<u4").tobytes()


#: constriction's categorical models quantise probabilities to 24 bits and, leaky (``perfect=False``), give every
#: symbol of a table at least one unit: no symbol is more probable than ``1 - (K - 1) / 2**24``
_ANS_PRECISION = 24
#: rows decoded per call of the ANS decoder (bounds the memory of the probability tiles)
_ANS_CHUNK = 4096


def ans_max_rows(payload_bytes: int, latent_dim: int, k: int) -> int | None:
    """Most rows of ``latent_dim`` symbols (tables of ``k`` entries) an ANS payload of ``payload_bytes`` can hold:
    each symbol costs at least ``-log2(1 - (k - 1) / 2**24)`` bits (see :data:`_ANS_PRECISION`), and the words
    hold at most ``8 * payload_bytes`` bits plus the 64 of the coder's final state. ``None`` when ``k < 2`` (a
    one-symbol table costs nothing)."""
    if k < 2 or latent_dim < 1:
        return None
    min_bits = -latent_dim * math.log2(1.0 - (k - 1) / 2.0 ** _ANS_PRECISION)
    return int((8 * payload_bytes + 64) / min_bits)


def ans_decode(data: bytes, n: int, code_min: np.ndarray, pmf: np.ndarray) -> np.ndarray:
    """Inverse of :func:`ans_encode`: ``n`` rows of integer codes ``(n, L)`` int64.

    A ``DataError`` when ``n`` exceeds what the payload can hold (:func:`ans_max_rows`, checked before decoding,
    so a hostile count is not allocated) or when words are left over after ``n`` rows (a count too small). A
    count too large within that bound cannot be told from genuine data: constriction encodes symbol 0 into an
    empty coder for free (and decodes an empty coder as symbol 0s), so trailing rows at every code's lowest value
    are legitimately stored in no words at all; the file's CRC-32 guards the header against accidents. Rows are
    decoded :data:`_ANS_CHUNK` at a time."""
    import constriction
    if len(data) % 4:
        raise DataError(f"ANS payload of {len(data)} bytes is not a whole number of 32-bit words")
    words = np.frombuffer(data, "<u4").astype(np.uint32)
    pmf = np.asarray(pmf, np.float64)
    L = len(code_min)
    if n == 0:
        if len(words):
            raise DataError(f"ANS payload of {len(data)} bytes for 0 samples (corrupt sample count)")
        return np.zeros((0, L), np.int64)
    cap = ans_max_rows(len(data), L, pmf.shape[1])
    if cap is not None and n > cap:
        raise DataError(f"the header says {n} samples but a {len(data)}-byte ANS payload holds at most {cap} "
                        "(corrupt sample count)")
    model = constriction.stream.model.Categorical(perfect=False)

    coder = constriction.stream.stack.AnsCoder(words)
    parts = []
    for done in range(0, n, _ANS_CHUNK):
        m = min(_ANS_CHUNK, n - done)
        parts.append(np.asarray(coder.decode(model, np.tile(pmf, (m, 1))), np.int64).reshape(m, L))
    if not coder.is_empty():
        raise DataError(f"the ANS payload holds more than the header's {n} samples ({coder.num_bits()} bits left "
                        "after them; corrupt sample count)")
    return np.concatenate(parts) + np.asarray(code_min, np.int64)[None, :]


def information_content(q: np.ndarray, code_min: np.ndarray, pmf: np.ndarray) -> float:
    """The ideal code length in bits, ``-sum log2 pmf[j, q_ij - code_min_j]``, of integer codes ``q``."""
    s = _check_symbols(q, code_min, pmf)
    cols = np.broadcast_to(np.arange(s.shape[1]), s.shape)
    return float(-np.log2(np.asarray(pmf, np.float64)[cols, s]).sum())


# ---------------------------------------------------------------------------- header
@dataclass(frozen=True)
class Header:
    """The parsed header of a ``.glc`` byte string."""

    version: int
    coder: str
    bits: int
    sample_shape: tuple[int, ...]
    n: int
    latent_dim: int
    payload_size: int
    model_hash: bytes
    crc32: int

    @property
    def size(self) -> int:
        """Header length in bytes."""
        return header_size(len(self.sample_shape))


def header_size(ndim: int) -> int:
    """Bytes of a header for samples with ``ndim`` axes (56 for images, 48 for tabular rows)."""
    return _FIXED.size + 4 * ndim + HASH_BYTES + _CRC.size


def payload_size(n: int, latent_dim: int, bits: int) -> int:
    """Payload of the fixed coder: ``ceil(n * latent_dim * bits / 8)``."""
    return math.ceil(n * latent_dim * bits / 8)


def encode_file(q: np.ndarray, *, bits: int | None = None, sample_shape: tuple[int, ...], model_hash: bytes,
                code_min: np.ndarray | None = None, pmf: np.ndarray | None = None) -> bytes:
    """The complete ``.glc`` bytes for integer codes ``q`` ``(N, L)``: fixed-length ``bits``-bit codes, or, when
    ``pmf`` (and ``code_min``) are given, ANS-coded under those tables (:func:`ans_encode`)."""
    q = np.asarray(q)
    if q.ndim != 2:
        raise DataError(f"codes must be (N, L), got shape {q.shape}")
    if len(model_hash) != HASH_BYTES:
        raise ConfigError(f"model hash must be {HASH_BYTES} bytes, got {len(model_hash)}")
    n, latent = q.shape
    if pmf is not None:
        coder, bits, payload = _CODER_ID["ans"], 0, ans_encode(q, code_min, pmf)
    else:
        coder, bits = _CODER_ID["fixed"], check_bits(bits)
        payload = pack_codes(q, bits)
    head = _FIXED.pack(MAGIC, FORMAT_VERSION, coder, bits, len(sample_shape), n, latent, len(payload))
    head += struct.pack(f"<{len(sample_shape)}I", *sample_shape) + bytes(model_hash)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + _CRC.pack(crc) + payload


def _not_glc(name: str) -> DataError:
    return DataError(f"{name}: not a genlab compressed file (bad magic bytes); give a file written by genlab "
                     "compress / Compressor.write")


def parse_header(data: bytes, *, name: str = "data") -> Header:
    """Parse and check the header of ``.glc`` bytes (magic, version, field ranges, enough bytes)."""
    data = memoryview(data)
    if len(data) < 5:
        if bytes(data[:len(MAGIC)]) != MAGIC[:len(data)]:
            raise _not_glc(name)
        raise DataError(f"{name}: truncated ({len(data)} bytes, shorter than the header); compress the data again")
    if bytes(data[:4]) != MAGIC:
        raise _not_glc(name)
    if data[4] != FORMAT_VERSION:
        raise DataError(f"{name}: format version {data[4]} is not supported (this genlab reads version "
                        f"{FORMAT_VERSION}); decompress it with the genlab version that wrote it")
    if len(data) < _FIXED.size:
        raise DataError(f"{name}: truncated ({len(data)} bytes, shorter than the header); compress the data again")
    _, version, coder, bits, ndim, n, latent, pay = _FIXED.unpack_from(data, 0)
    coders = {v: k for k, v in _CODER_ID.items()}
    bad_bits = (bits != 0) if coder == _CODER_ID["ans"] else not 1 <= bits <= MAX_BITS
    if coder not in coders or bad_bits or ndim not in (1, 3) or latent < 1 or n < 1 or \
            (coder == _CODER_ID["fixed"] and pay != payload_size(n, latent, bits)):
        raise DataError(f"{name}: corrupt header (coder={coder}, bits={bits}, ndim={ndim}, N={n}, latent={latent}, "
                        f"payload={pay}); compress the data again")
    if len(data) < header_size(ndim):
        raise DataError(f"{name}: truncated ({len(data)} bytes, shorter than the {header_size(ndim)}-byte "
                        "header); compress the data again")
    off = _FIXED.size
    shape = struct.unpack_from(f"<{ndim}I", data, off)
    off += 4 * ndim
    model_hash = bytes(data[off:off + HASH_BYTES])
    (crc,) = _CRC.unpack_from(data, off + HASH_BYTES)
    if min(shape) < 1:
        raise DataError(f"{name}: corrupt header (sample shape {shape}); compress the data again")
    return Header(version, coders[coder], bits, tuple(shape), n, latent, pay, model_hash, crc)


def read_payload(data: bytes, *, name: str = "data") -> tuple[Header, bytes]:
    """``(header, payload bytes)`` of ``.glc`` bytes; checks the length and the CRC-32."""
    h = parse_header(data, name=name)
    want = h.size + h.payload_size
    if len(data) < want:
        raise DataError(f"{name}: truncated ({len(data)} of {want} bytes); copy the whole file or compress "
                        "the data again")
    if len(data) > want:
        raise DataError(f"{name}: {len(data) - want} unexpected bytes after the codes (corrupt or concatenated "
                        "file); compress the data again")
    mv = memoryview(data)
    crc = zlib.crc32(mv[h.size:], zlib.crc32(mv[:h.size - _CRC.size]))
    if crc != h.crc32:
        raise DataError(f"{name}: corrupt (CRC-32 mismatch); the file was damaged, compress the data again")
    return h, bytes(mv[h.size:])


def decode_file(data: bytes, *, name: str = "data", code_min: np.ndarray | None = None,
                pmf: np.ndarray | None = None) -> tuple[Header, np.ndarray]:
    """``(header, integer codes (N, L))`` from ``.glc`` bytes; an ANS file needs the tables it was coded with."""
    h, payload = read_payload(data, name=name)
    if h.coder == "fixed":
        count = h.n * h.latent_dim  # the header check made P == ceil(count * bits / 8)
        pad = -count * h.bits % 8
        if pad and payload[-1] & ((1 << pad) - 1):  # pack_codes pads the last byte with zero bits
            raise DataError(f"{name}: corrupt (non-zero padding after the {h.n} samples' codes; wrong sample count?); "
                            "compress the data again")
        q = unpack_codes(payload, h.bits, count).reshape(h.n, h.latent_dim)
        return h, q
    if pmf is None or code_min is None:
        raise ConfigError(f"{name} is ANS-coded; decoding needs the probability tables of the Compressor that "
                          "wrote it")
    if len(code_min) != h.latent_dim:
        raise CheckpointError(f"{name}: latent dim {h.latent_dim} but the tables have {len(code_min)}")
    try:
        q = ans_decode(payload, h.n, code_min, pmf)
    except (ValueError, RuntimeError, AssertionError) as e:
        raise DataError(f"{name}: corrupt ANS payload ({e}); compress the data again") from None
    return h, q


def model_hash(model, lo: np.ndarray, hi: np.ndarray, pmf: np.ndarray | None = None) -> bytes:
    """SHA-256 (first 16 bytes) over the model's name, config, state tensors (sorted by name: name, dtype,
    shape, raw bytes), the quantiser ranges (float64) and the probability tables (float64, when given)."""
    from ..config import to_dict
    h = hashlib.sha256()
    h.update(json.dumps({"model": model.registry_name, "config": to_dict(model.config)}, sort_keys=True).encode())
    for k, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    for a in (lo, hi) + ((pmf,) if pmf is not None and np.size(pmf) else ()):
        h.update(np.ascontiguousarray(a, dtype="<f8").tobytes())
    return h.digest()[:HASH_BYTES]


# ---------------------------------------------------------------------------- rate-distortion fine-tuning
class _RateDistortion(GenerativeModel):
    """Training-only wrapper the Trainer fits: an autoencoder plus a :class:`FactorizedDensity` on its codes,
    with the loss ``R + lmbda * D`` (see the module docstring). Not registered: ``fit`` unwraps it."""

    registry_name = "compress-rd"
    can_sample = False
    can_reconstruct = False
    has_encoder = True
    has_decoder = True

    def __init__(self, ae: GenerativeModel, *, lmbda: float, seed: int):
        super().__init__(ae.config, ae.data_info)
        self.ae = ae
        latent = int(ae.encode(torch.zeros(1, *ae.shape, device=ae.device)).shape[1])
        self.prior = FactorizedDensity(latent, generator=torch.Generator().manual_seed(seed))
        self.lmbda = float(lmbda)

    def training_step(self, batch: dict, step: int, optimizer: str = "main") -> dict:
        x = batch["x"]
        z = self.ae.encode(x)  # (B, L)
        if self.training and step >= 0:
            y = z + torch.rand_like(z) - 0.5  # rate of the noisy proxy
            zq = z + (torch.round(z) - z).detach()  # decoder sees the rounded code (straight-through)
        else:
            y = zq = torch.round(z)
        rate = -torch.log2(self.prior.bin_probability(y)).sum(1).mean()  # bits per sample
        dist = ((self.ae.decode(zq) - x) ** 2).flatten(1).sum(1).mean()  # squared error per sample
        return {"loss": rate + self.lmbda * dist, "bits": rate.detach(), "sse": dist.detach()}

    def configure_optimizers(self) -> dict[str, OptimizerSpec]:
        lr = float(getattr(self.ae.config, "lr", 1e-3))
        opt = torch.optim.Adam([{"params": self.ae.parameters(), "lr": lr},
                                {"params": self.prior.parameters(), "lr": 10 * lr}])
        return {"main": OptimizerSpec(opt)}


# ---------------------------------------------------------------------------- estimator
class Compressor(ModelTransformer):
    """Compress samples to entropy-coded latent codes of an autoencoder and back.

    Parameters
    ----------
    model : str, path or GenerativeModel, default "ae"
        An unconditional model with an encoder (``ae``, ``sparse-ae``, ``denoising-ae``, ``contractive-ae``,
        ``vae``; a VAE's posterior mean is the code) trained in ``fit``, a saved model / run folder, or a
        loaded model (with ``coder="ans"`` a copy of it is fine-tuned; the given model is not changed). The code
        size is the model's ``latent_dim`` (``model_config={"latent_dim": 32}``).
    model_config : dict, optional
        Config of the model trained in ``fit``.
    coder : {"ans", "fixed"}, default "ans"
        ``"ans"``: integer codes ANS-coded under a learned factorised prior, the model fine-tuned on the
        rate-distortion loss; ``"fixed"``: ``bits`` bits per code, no entropy coding (the module docstring
        has both).
    lmbda : float, default 30.0
        Rate-distortion trade-off of the ``"ans"`` coder: the loss is bits per sample + ``lmbda`` x the sum of
        squared errors per sample (images in [0, 1], tabular rows standardised). Larger: bigger files, better
        quality.
    rd_epochs : int, default 20
        Epochs of rate-distortion fine-tuning (``"ans"`` coder), after the ``epochs`` of plain training.
    bits : int, default 8
        Bits per latent value of the ``"fixed"`` coder, 1..16 (the quantiser ranges do not depend on it, so
        ``set_params(bits=...)`` after ``fit`` needs no refit). Not used by ``"ans"`` (still checked).
    clip_percentile : float, default 0.0
        ``"fixed"`` coder: range of each latent dimension, the ``[p, 100 - p]`` percentiles of the training codes
        (``0``: min/max). Values outside the range are clipped when compressing.
    epochs, batch_size, random_state, validation_fraction, trainer_config
        Training of the wrapped model (see :class:`~genlab.apps.ModelEstimator`); the fine-tuning uses the same
        batch size, seed, validation split and trainer config.
    verbose : bool or None, default None
        Show the training progress display (scikit-learn's name): ``True`` on, ``False`` off, ``None`` auto
        (on when stderr is a terminal and ``CI`` is not set; ``GENLAB_PROGRESS=1``/``0`` overrides auto).

    Attributes
    ----------
    model_ : GenerativeModel
        The (fine-tuned) autoencoder.
    code_min_, code_max_ : ndarray of shape (latent_dim,)
        ``"fixed"``: quantiser ranges; ``"ans"``: the integer support of each code (float64).
    code_pmf_ : ndarray of shape (latent_dim, K)
        ``"ans"``: probability of code ``code_min_[j] + k`` in column ``k`` (zero past the support); ``(L, 0)``
        for ``"fixed"``.
    latent_dim_ : int
    model_hash_ : str
        Hex of the 16-byte hash written into every file (see :func:`model_hash`).
    n_features_in_ : int
        Scalars per sample (``D``, or ``C*H*W`` for images).
    feature_names_in_ : ndarray of str
        Column names, when ``fit`` was given a DataFrame with string column names or a CSV with a header
        (``TensorDataset.columns``); data with other names, or in another order, is then refused.
    """

    default_model = "ae"
    #: codes come from the encoder and go back through the decoder; a file holds no labels to condition on
    _needs = ("has_encoder", "has_decoder")
    _refuses = ("conditional",)
    _json_state = ("latent_dim_", "model_hash_")
    _array_state = ("code_min_", "code_max_", "code_pmf_")
    _preserves_dtype = ()  # transform gives integer codes, whatever the input dtype

    def __init__(self, *, model="ae", model_config=None, coder="ans", lmbda=30.0, rd_epochs=20, bits=8,
                 clip_percentile=0.0, epochs=50, batch_size=128, random_state=0, validation_fraction=0.1,
                 trainer_config=None, verbose=None):
        self.model = model
        self.model_config = model_config
        self.coder = coder
        self.lmbda = lmbda
        self.rd_epochs = rd_epochs
        self.bits = bits
        self.clip_percentile = clip_percentile
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state
        self.validation_fraction = validation_fraction
        self.trainer_config = trainer_config
        self.verbose = verbose

    @classmethod
    def _upgrade_params(cls, params: dict) -> dict:
        return {"coder": "fixed", **params}  # estimators saved before the ANS coder existed

    def _check_params(self) -> None:
        if self.coder not in CODERS:
            raise ConfigError(f"coder must be one of {', '.join(CODERS)}, got {self.coder!r}; e.g. coder='ans'")
        check_bits(self.bits)  # used by "fixed" only, but a value out of range is refused with either coder
        lm = self.lmbda
        if isinstance(lm, bool) or not isinstance(lm, (int, float, np.integer, np.floating)) or \
                not (math.isfinite(lm) and lm > 0):
            raise ConfigError(f"lmbda must be a positive number, got {lm!r}; e.g. lmbda=30")
        if lm > MAX_LMBDA:
            raise ConfigError(f"lmbda must be a positive number <= {MAX_LMBDA:g}, got {lm!r} (the float32 loss "
                              "bits + lmbda x squared error would overflow); e.g. lmbda=30, or 1000 for high quality")
        e = self.rd_epochs
        if isinstance(e, bool) or not isinstance(e, (int, np.integer)) or e < 1:
            raise ConfigError(f"rd_epochs must be an integer >= 1, got {e!r}; e.g. rd_epochs=20")
        if e > MAX_RD_EPOCHS:
            raise ConfigError(f"rd_epochs must be an integer >= 1 and <= {MAX_RD_EPOCHS}, got {e!r} (fine-tuning "
                              "converges in tens of epochs); e.g. rd_epochs=20")
        p = self.clip_percentile
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 50.0:
            raise ConfigError(f"clip_percentile must be a number in [0, 50), got {p!r}; e.g. 0 (min/max) or 0.5")

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None):
        """Train (or load) the model; for ``coder="ans"`` fine-tune it with the prior on the rate-distortion
        loss and tabulate the prior; for ``"fixed"`` learn the quantiser ranges from the codes of ``X``.

        Parameters
        ----------
        X : array-like of shape (N, C, H, W), (N, H, W) or (N, D), or a TensorDataset
        y : ignored

        Returns
        -------
        self
        """
        self._check_params()
        self.check_model()
        ds = self._dataset(X, reset=True)
        model = self._fit_model(ds)
        if self.coder == "ans":
            model = self._fine_tune(model, ds)
            self.model_ = model
            z = self._codes(self._to_model(ds))  # (N, L)
            lo, pmf = probability_tables(self._prior, np.rint(z))
            del self._prior
            self.code_min_ = lo.astype(np.float64)
            self.code_max_ = (lo + (pmf > 0).sum(1) - 1).astype(np.float64)
            self.code_pmf_ = pmf
        else:
            z = self._codes(self._to_model(ds))  # (N, L)
            p = self.clip_percentile
            if p > 0:
                lo, hi = np.percentile(z, p, axis=0), np.percentile(z, 100.0 - p, axis=0)
            else:
                lo, hi = z.min(0), z.max(0)
            self.code_min_ = np.asarray(lo, np.float64)
            self.code_max_ = np.asarray(hi, np.float64)
            self.code_pmf_ = np.zeros((z.shape[1], 0))
        self.latent_dim_ = int(z.shape[1])
        self.model_hash_ = self._compute_hash().hex()
        log.info("Compressor: latent_dim %d, coder %s, tables from %d training codes", self.latent_dim_,
                 self.coder, len(z))
        return self

    def _fine_tune(self, model: GenerativeModel, ds: TensorDataset) -> GenerativeModel:
        """Fine-tune a copy of ``model`` with a factorised prior on ``R + lmbda * D`` with the Trainer; keeps the
        prior in ``self._prior`` for :func:`probability_tables`."""
        from ..training import Trainer, seed_everything
        from ..training.progress import TrainProgress, close_displays
        seed = int(self.random_state or 0)
        rd = _RateDistortion(copy.deepcopy(model).train(), lmbda=float(self.lmbda), seed=seed)
        val_frac = float(self.validation_fraction or 0.0)
        train, val = ds, None
        if val_frac > 0 and len(ds) >= 10:
            train, val, _ = ds.split(val=val_frac, test=0.0, seed=seed)
        cfg = {"epochs": int(self.rd_epochs), "batch_size": int(self.batch_size), "seed": seed,
               "restore_best": True, "monitor_every": 0, **(self.trainer_config or {})}
        bar = TrainProgress("compress: rate-distortion fine-tuning", progress=self.verbose)
        trainer = Trainer(cfg, callbacks=[bar])
        seed_everything(seed)
        try:
            trainer.fit(rd, train, val if val is not None and len(val) else None)
        finally:
            close_displays(trainer.callbacks)
        rd.eval()
        self._prior = rd.prior.cpu()
        return rd.ae.eval()

    def _compute_hash(self) -> bytes:
        pmf = self.code_pmf_ if self.coder == "ans" else None
        return model_hash(self.model_, self.code_min_, self.code_max_, pmf)

    @classmethod
    def load(cls, path):
        """Rebuild a Compressor written by :meth:`save`; checks the weights and tables still hash to the
        stored ``model_hash_``."""
        est = super().load(path)
        now = est._compute_hash().hex()
        if now != est.model_hash_:
            raise CheckpointError(f"{path}: the model weights or quantiser tables changed since the estimator was "
                                  f"saved (hash {now[:12]} vs {est.model_hash_[:12]}); save the Compressor again")
        return est

    # ------------------------------------------------------------------ codes
    @torch.no_grad()
    def _codes(self, x: torch.Tensor) -> np.ndarray:
        """Latent codes ``(N, L)`` float64 of model-space samples (a VAE's posterior mean)."""
        m = self.model_.eval()
        out = []
        for xb in x.split(512):
            out.append(m.encode(xb.to(m.device, torch.float32)).float().cpu())  # (B, L)
        return torch.cat(out).double().numpy()

    @torch.no_grad()
    def _decode(self, z: np.ndarray) -> torch.Tensor:
        """Model-space samples from latent values ``(N, L)``."""
        m = self.model_.eval()
        zt = torch.from_numpy(np.ascontiguousarray(z, np.float32))
        return torch.cat([m.decode(zb.to(m.device)).float().cpu() for zb in zt.split(512)])

    def _hash(self) -> bytes:
        return bytes.fromhex(self.model_hash_)

    def _data(self, X) -> TensorDataset:
        self._check_fitted()
        ds = self._dataset(X, reset=False)
        self._check_shape(ds)
        return ds

    def _quantize(self, z: np.ndarray, bits: int | None = None) -> np.ndarray:
        if self.coder == "ans":  # integers clipped to the tables' support
            return np.clip(np.rint(z), self.code_min_, self.code_max_).astype(np.int64)
        return quantize(z, self.code_min_, self.code_max_, check_bits(self.bits if bits is None else bits))

    def _dequantize(self, q: np.ndarray, bits: int | None = None) -> np.ndarray:
        if self.coder == "ans":
            return np.asarray(q, np.float64)
        return dequantize(q, self.code_min_, self.code_max_, check_bits(self.bits if bits is None else bits))

    def _encode_file(self, q: np.ndarray, sample_shape, bits: int | None = None) -> bytes:
        if self.coder == "ans":
            return encode_file(q, sample_shape=sample_shape, model_hash=self._hash(),
                               code_min=self.code_min_.astype(np.int64), pmf=self.code_pmf_)
        return encode_file(q, bits=check_bits(self.bits if bits is None else bits), sample_shape=sample_shape,
                           model_hash=self._hash())

    def transform(self, X) -> np.ndarray:
        """Integer codes ``(N, latent_dim)`` of ``X``: int64 in ``[code_min_, code_max_]`` for ``"ans"``, uint32
        below ``2**bits`` for ``"fixed"``."""
        ds = self._data(X)
        return self._quantize(self._codes(self._to_model(ds)))

    def inverse_transform(self, codes, *, bits: int | None = None) -> np.ndarray:
        """Decoded samples from integer codes ``(N, latent_dim)`` (``"fixed"``: quantised with ``bits``, default
        ``self.bits``): images ``(N, C, H, W)`` in [0, 1], tabular rows in the data's units."""
        self._check_fitted()
        q = np.asarray(codes)
        if q.ndim != 2 or q.shape[1] != self.latent_dim_:
            raise DataError(f"codes must have shape (N, {self.latent_dim_}), got {q.shape}")
        if q.dtype.kind not in "iufb":
            raise DataError(f"codes have dtype {q.dtype}; give the integer codes of transform(X)")
        if q.dtype.kind == "f" and q.size and not np.isfinite(q).all():
            raise DataError("codes contain NaN or inf; give the integer codes of transform(X) (there is no code for "
                            "a missing value)")
        if q.dtype.kind == "f" and q.size and (q != np.round(q)).any():
            raise DataError("codes must be whole numbers; give the integer codes of transform(X), not dequantised "
                            "latent values")
        if self.coder == "fixed":
            bits = check_bits(self.bits if bits is None else bits)
            if q.size and (q.min() < 0 or q.max() >= 2 ** bits):
                raise DataError(f"codes must be integers in [0, {2 ** bits - 1}] for bits={bits}")
        return self._from_model(self._decode(self._dequantize(q, bits)))

    # ------------------------------------------------------------------ bytes and files
    def compress(self, X) -> bytes:
        """The ``.glc`` bytes (header + coded integer codes) of ``X``."""
        ds = self._data(X)
        if self.coder == "fixed":
            check_bits(self.bits)
        return self._encode_file(self._quantize(self._codes(self._to_model(ds))), ds.sample_shape)

    def decompress(self, data, *, name: str = "data") -> np.ndarray:
        """Samples decoded from ``.glc`` data written by this estimator: images ``(N, C, H, W)`` in [0, 1],
        tabular rows in the data's units. The coder (and a fixed coder's bits) come from the file's header.

        Parameters
        ----------
        data : bytes-like, str or path-like
            The bytes of :meth:`compress` (``bytes``, ``bytearray``, ``memoryview``), or the path of a ``.glc``
            file (then the same as :meth:`read`).
        name : str, default "data"
            Names the data in error messages (a path names itself).

        Raises
        ------
        ConfigError
            ``data`` is neither bytes nor a path.
        DataError
            Not a ``.glc`` file, truncated or corrupt (CRC-32, or ANS words that do not decode to exactly the
            header's sample count).
        CheckpointError
            Written by another model, quantiser or prior (hash, shape or latent size differ).
        """
        self._check_fitted()
        if isinstance(data, (str, os.PathLike)):
            return self.read(data)
        try:
            data = bytes(memoryview(data))
        except TypeError:
            raise ConfigError(f"decompress takes the .glc bytes (Compressor.compress) or a .glc file path, got "
                              f"{type(data).__name__}; e.g. est.decompress(data) or est.decompress('data.glc')") from None
        h = parse_header(data, name=name)
        read_payload(data, name=name)  # length and CRC before the model check
        self._check_header(h, name)
        _, q = decode_file(data, name=name, code_min=self.code_min_.astype(np.int64), pmf=self.code_pmf_)
        z = q.astype(np.float64) if h.coder == "ans" else dequantize(q, self.code_min_, self.code_max_, h.bits)
        return self._from_model(self._decode(z))

    def _check_header(self, h: Header, name: str) -> None:
        diffs = []
        if h.sample_shape != tuple(self.input_shape_):
            diffs.append(f"sample shape {h.sample_shape} vs {tuple(self.input_shape_)}")
        if h.latent_dim != self.latent_dim_:
            diffs.append(f"latent dim {h.latent_dim} vs {self.latent_dim_}")
        if h.coder != self.coder:
            diffs.append(f"coder {h.coder} vs {self.coder}")
        if h.model_hash != self._hash() or diffs:
            diffs.insert(0, f"model hash {h.model_hash.hex()[:12]} vs {self.model_hash_[:12]}")
            raise CheckpointError(f"{name} was compressed by a different model or quantiser (file vs estimator: "
                                  f"{'; '.join(diffs)}); decompress it with the estimator that wrote it "
                                  "(Compressor.load(DIR), or genlab decompress FILE --run DIR)")

    def write(self, path, X) -> Path:
        """Compress ``X`` and write the bytes to ``path`` atomically."""
        from ..io.atomic import write_bytes_atomic
        data = self.compress(X)
        write_bytes_atomic(path, data)
        log.info("Compressor: wrote %d bytes to %s", len(data), path)
        return Path(path)

    def read(self, path) -> np.ndarray:
        """Decompress the file at ``path`` (str or path-like; see :meth:`decompress`)."""
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror or e}); check the path") from None
        return self.decompress(data, name=str(path))

    # ------------------------------------------------------------------ figures
    def decoder_bytes(self) -> int:
        """Bytes the reader must hold once: the decoder's parameters and buffers as float32 (the whole model
        when it has no ``decoder`` attribute) plus, for ``"ans"``, the probability tables as float32 and the
        supports as int32."""
        self._check_fitted()
        net = getattr(self.model_, "decoder", self.model_)
        n = sum(t.numel() for t in net.state_dict().values())
        tables = int(np.count_nonzero(self.code_pmf_)) + self.latent_dim_ if self.coder == "ans" else \
            2 * self.latent_dim_
        return 4 * (n + tables)

    def evaluate(self, X, *, bits: int | None = None) -> dict:
        """Rate and distortion of compressing ``X`` (``"fixed"``: with ``bits``, default ``self.bits``).

        Returns a dict: ``n``, ``coder``, ``bits`` (``None`` for ``"ans"``), ``latent_dim``, ``header_bytes``,
        ``payload_bytes``, ``file_bytes``, ``bytes_per_sample`` (file bytes / N, header amortised),
        ``bits_per_value`` (of the input), ``ideal_payload_bytes`` (``"ans"``: the information content / 8),
        ``decoder_bytes`` (:meth:`decoder_bytes`), ``raw_bytes_per_sample`` and ``raw_format`` (uint8 pixels for
        images, float32 for tabular rows), ``compression_ratio`` (raw / compressed), ``mse`` (model space:
        images in [0, 1], tabular rows standardised by the model's training statistics), ``mse_unquantised``
        (the same without quantisation), and for images ``psnr`` / ``psnr_unquantised`` (dB, data range 1,
        per-image mean; see :func:`genlab.metrics.psnr`).
        """
        from ..metrics.reconstruction import psnr
        ds = self._data(X)
        if self.coder == "fixed":
            bits = check_bits(self.bits if bits is None else bits)
        else:
            bits = None
        x = self._to_model(ds)  # (N, ...) model space
        z = self._codes(x)
        q = self._quantize(z, bits)
        data = self._encode_file(q, ds.sample_shape, bits)
        rec = self._decode(self._dequantize(q, bits))
        rec0 = self._decode(z)
        if self.kind_ == "image":
            rec, rec0 = rec.clamp(0, 1), rec0.clamp(0, 1)
        n = len(ds)
        dim = int(np.prod(ds.sample_shape))
        raw = dim if self.kind_ == "image" else 4 * dim
        hs = header_size(len(ds.sample_shape))
        ideal = information_content(q, self.code_min_.astype(np.int64), self.code_pmf_) / 8 \
            if self.coder == "ans" else None
        out = {"n": n, "coder": self.coder, "bits": bits, "latent_dim": self.latent_dim_, "header_bytes": hs,
               "payload_bytes": len(data) - hs, "file_bytes": len(data), "bytes_per_sample": len(data) / n,
               "bits_per_value": 8.0 * len(data) / (n * dim), "ideal_payload_bytes": ideal,
               "decoder_bytes": self.decoder_bytes(), "raw_bytes_per_sample": raw,
               "raw_format": "uint8" if self.kind_ == "image" else "float32",
               "compression_ratio": raw * n / len(data),
               "mse": float(((rec - x) ** 2).mean()), "mse_unquantised": float(((rec0 - x) ** 2).mean())}
        if self.kind_ == "image":
            out["psnr"] = psnr(rec, x)
            out["psnr_unquantised"] = psnr(rec0, x)
        return out

    def score(self, X, y=None) -> float:
        """PSNR (dB) for images, minus the MSE (model space) for tabular data: higher is better."""
        r = self.evaluate(X)
        return r["psnr"] if "psnr" in r else -r["mse"]

    def rate_distortion(self, X, *, bits=(2, 4, 6, 8)) -> list[dict]:
        """``"fixed"``: one :meth:`evaluate` row per bit depth, with this model; ``"ans"``: the one row of this
        model (for several trade-offs or code sizes see the module function :func:`rate_distortion`)."""
        if self.coder == "ans":
            return [self.evaluate(X)]
        return [self.evaluate(X, bits=b) for b in bits]


def rate_distortion(X_train, X_test, *, latent_dims=(8, 16, 32), bits=(8,), lmbdas=None, **params) -> list[dict]:
    """A rate-distortion table across code sizes and bit depths (``coder="fixed"``) or trade-offs ``lmbdas``
    (``coder="ans"``, the default).

    Fits one :class:`Compressor` per latent size (and per ``lmbda``) on ``X_train`` (``params`` are its
    parameters; the latent size goes into ``model_config``) and evaluates it on ``X_test``.

    Returns
    -------
    list of dict
        :meth:`Compressor.evaluate` rows sorted by latent_dim then bits / lmbda (``lmbda`` is added to ANS rows).
    """
    rows = []
    base_cfg = dict(params.pop("model_config", None) or {})
    coder = params.get("coder", "ans")
    lmbdas = tuple(lmbdas) if lmbdas is not None else (params.pop("lmbda", 30.0),)
    params.pop("lmbda", None)
    for k in latent_dims:
        cfg = {**base_cfg, "latent_dim": int(k)}
        if coder == "ans":
            for lm in lmbdas:
                est = Compressor(model_config=cfg, lmbda=float(lm), **params).fit(X_train)
                rows.append({**est.evaluate(X_test), "lmbda": float(lm)})
        else:
            est = Compressor(model_config=cfg, **params).fit(X_train)
            rows += est.rate_distortion(X_test, bits=bits)
    return rows

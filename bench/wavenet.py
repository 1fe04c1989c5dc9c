"""WaveNet against a Gaussian AR(p) on a real series: held-out NLL per step and 1-step-ahead forecast RMSE.

Protocol (held-out data only):

* **Data**: the built-in ``sunspots`` (yearly sunspot numbers 1700-2008, 309 steps, from the statsmodels wheel;
  ``--data co2|elnino|nile`` for the other built-ins). Split in time with
  :func:`genlab.data.sequence.time_split`: training part = the first 70% of the years, validation = the next
  10%, test = the last 20% (``--val``, ``--test``). Standardised by the training part's mean and std.
* **WaveNet** (``wavenet``: 5 gated blocks, dilations 1..16, receptive field 33 steps, 16 residual / 32 skip
  channels, 256 mu-law bins over +-8 std, head ``--head``: default the discretised logistic mixture of 5
  components; Adam lr 1e-3, weight decay 1e-4): trained on all windows of ``--window`` (64) steps of the training
  part (stride 1), ``--epochs`` passes (default 150) of batches of 16, with the model's own ``training_step`` and
  ``configure_optimizers`` (what genlab's Trainer calls; the bench loops itself to early-stop on a figure the
  Trainer does not compute). After every ``--eval-every`` (5) passes the validation NLL is computed (each
  validation step scored given ALL the steps before it, like the test steps); the weights with the lowest one are
  kept (early stopping on the validation part only). ``--seeds`` seeds (0, 1, ...); mean and standard deviation
  over them. One thread, CPU.
* **AR(p)** (``statsmodels.tsa.ar_model.AutoReg``, constant + p lags): p chosen by AIC on the training part
  (``ar_select_order``, maxlag ``--maxlag`` 30), fitted by OLS on the training part; Gaussian 1-step predictive
  ``N(c + sum_i phi_i x_{t-i}, sigma2)`` with the fitted residual variance ``sigma2``.
* **Test figures** on every step of the test part, each given all the steps before it (the training and
  validation years are context, never scored): the negative log DENSITY per step on the standardised scale (nats).
  WaveNet's discrete likelihood is made a density by dividing each bin's probability by the bin's width on the
  standardised scale (:meth:`WaveNet.step_log_probs` with ``density=True``: a piecewise-constant density); add
  ``log(std)`` of the training part for nats in raw units (the same shift for both models). 1-step-ahead forecast
  RMSE in raw units: WaveNet's predictive mean (bin probabilities times bin centres), AR's conditional mean; and
  the persistence forecast (``x_{t-1}``) for scale.

Run (the figures in docs/models/wavenet.md)::

    nice -n 10 .venv/bin/python bench/wavenet.py --epochs 150 --seeds 3      # logistic-mixture head
    nice -n 10 .venv/bin/python bench/wavenet.py --head softmax --epochs 300 --seeds 1 --eval-every 10
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from genlab.data import load_dataset
from genlab.data.sequence import time_split
from genlab.models.wavenet import WaveNet, WaveNetConfig

LOG_2PI = math.log(2 * math.pi)


def windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """All windows ``(N_w, C, window)`` of a ``(1, C, T)`` series, stride 1."""
    T = x.shape[2]
    idx = torch.arange(T - window + 1)[:, None] + torch.arange(window)[None, :]
    return x[0][:, idx].permute(1, 0, 2).contiguous()


def wavenet_run(z: torch.Tensor, n_tr: int, n_va: int, args, seed: int) -> dict:
    """Train on windows of z[:, :, :n_tr]; early stopping on the validation steps (given their past); test figures
    on the steps after n_tr + n_va."""
    torch.manual_seed(seed)
    cfg = WaveNetConfig(channels=args.channels, skip_channels=2 * args.channels, layers=args.layers,
                        lr=args.lr, weight_decay=args.weight_decay, head=args.head, n_mix=args.n_mix)
    info = {"name": args.data, "kind": "sequence", "shape": [z.shape[1], args.window], "num_classes": None,
            "classes": None, "norm": {"shift": 0.0, "scale": 1.0}}
    m = WaveNet(cfg, info)
    opt = m.configure_optimizers()["main"].optimizer
    tr = windows(z[:, :, :n_tr], args.window)
    g = torch.Generator().manual_seed(seed)
    best, best_state, t0 = math.inf, None, time.process_time()
    for epoch in range(1, args.epochs + 1):
        m.train()
        for idx in torch.randperm(len(tr), generator=g).split(16):
            loss = m.training_step({"x": tr[idx]}, epoch)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % args.eval_every == 0 or epoch == args.epochs:
            m.eval()
            va = -float(m.step_log_probs(z[:, :, :n_tr + n_va], density=True)[..., n_tr:].mean())
            if va < best:
                best, best_state = va, {k: v.clone() for k, v in m.state_dict().items()}
                best_epoch = epoch
    cpu = time.process_time() - t0
    m.load_state_dict(best_state)
    m.eval()
    lp = m.step_log_probs(z, density=True)[0, :, n_tr + n_va:]        # (C, T_test)
    pred = m.one_step_mean(z)[0, :, n_tr + n_va:]
    return {"nll": -float(lp.mean()), "pred": pred, "val": best, "epoch": best_epoch, "cpu": cpu,
            "rf": m.receptive_field}


def ar_run(z: np.ndarray, n_tr: int, n_va: int, maxlag: int) -> dict:
    from statsmodels.tsa.ar_model import AutoReg, ar_select_order

    train = z[:n_tr]
    sel = ar_select_order(train, maxlag=maxlag, ic="aic", trend="c")
    lags = sel.ar_lags or []
    p = max(lags) if lags else 0
    res = AutoReg(train, lags=lags, trend="c").fit()
    c, phi = float(res.params[0]), np.asarray(res.params[1:], dtype=np.float64)
    sigma2 = float(res.sigma2)
    t_idx = np.arange(n_tr + n_va, len(z))
    mean = np.array([c + sum(phi[i] * z[t - lag] for i, lag in enumerate(lags)) for t in t_idx])
    resid = z[t_idx] - mean
    nll = 0.5 * (LOG_2PI + math.log(sigma2)) + 0.5 * resid ** 2 / sigma2
    return {"nll": float(nll.mean()), "pred": mean, "p": p, "lags": lags, "sigma2": sigma2}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="sunspots")
    ap.add_argument("--val", type=float, default=0.1)
    ap.add_argument("--test", type=float, default=0.2)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--maxlag", type=int, default=30)
    ap.add_argument("--head", default="logistic_mixture", choices=["softmax", "logistic_mixture"])
    ap.add_argument("--n-mix", type=int, default=5)
    ap.add_argument("--eval-every", type=int, default=5)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    ds = load_dataset(args.data)
    if ds.x.shape[0] != 1 or ds.x.shape[1] != 1:
        raise SystemExit(f"{args.data}: the bench takes one univariate series")
    tr_part, va_part, te_part = time_split(ds, val=args.val, test=args.test)
    n_tr, n_va, n_te = tr_part.x.shape[2], va_part.x.shape[2], te_part.x.shape[2]
    raw = ds.x.double()                                                     # (1, 1, T)
    mu, sd = float(raw[..., :n_tr].mean()), float(raw[..., :n_tr].std(unbiased=False))
    z = ((raw - mu) / sd).float()
    print(f"{args.data}: {raw.shape[2]} steps; train {n_tr}, val {n_va}, test {n_te} (the last); "
          f"standardised by the training part (mean {mu:.4g}, std {sd:.4g}); test max |z| = "
          f"{float(z[..., n_tr + n_va:].abs().max()):.2f}")

    truth = raw[0, 0, n_tr + n_va:].numpy()
    rmse = lambda pred: float(np.sqrt(np.mean((np.asarray(pred) - truth) ** 2)))   # noqa: E731

    ar = ar_run(z[0, 0].double().numpy(), n_tr, n_va, args.maxlag)
    ar_rmse = rmse(ar["pred"] * sd + mu)
    persist = raw[0, 0, n_tr + n_va - 1:-1].numpy()

    runs = []
    for s in range(args.seeds):
        r = wavenet_run(z, n_tr, n_va, args, s)
        r["rmse"] = rmse(r["pred"][0].double().numpy() * sd + mu)
        runs.append(r)
        print(f"  wavenet seed {s}: test NLL {r['nll']:.4f} nats/step, RMSE {r['rmse']:.2f}, best val NLL "
              f"{r['val']:.4f} at epoch {r['epoch']}, {r['cpu']:.0f} CPU s")
    nll = np.array([r["nll"] for r in runs])
    rm = np.array([r["rmse"] for r in runs])
    print()
    print(f"| model | test NLL (nats/step, standardised scale) | 1-step RMSE ({args.data} units) |")
    print("|---|---|---|")
    print(f"| wavenet {args.head} (receptive field {runs[0]['rf']}, {args.seeds} seeds, mean ± sd) | "
          f"{nll.mean():.3f} ± {nll.std():.3f} | {rm.mean():.2f} ± {rm.std():.2f} |")
    print(f"| Gaussian AR({ar['p']}) (AIC, lags {ar['lags']}) | {ar['nll']:.3f} | {ar_rmse:.2f} |")
    print(f"| persistence (x[t-1]) | - | {rmse(persist):.2f} |")
    print(f"\nraw units: add log(std) = {math.log(sd):.3f} nats to both NLL figures; test steps: {n_te}")


if __name__ == "__main__":
    main()

"""What every number genlab reports means: one table from a metric key to its group, label, unit and convention.

Used by the run report (:mod:`genlab.io.report`) and by the CLI's metric tables, so a key reads the same
everywhere. Keys come from four places, and :func:`describe` understands each spelling:

* ``final_metrics.json`` of a run: run facts (``steps``, ``train_seconds`` ...), the held-out test numbers
  (``test_mse``, ``test_iwae_k100``, ``test_elbo_given_y`` ...), the last validation record (``val_<key>``) and the
  monitored best (``best_val_<key>``, ``best_step``);
* ``metrics.jsonl`` records: the model's own losses (``loss``, ``rec``, ``kl``, ``d_loss`` ...), the monitors'
  ``fid``/``div_*``/``cond_acc`` and key families ``loss/<optimizer>``, ``lr/<optimizer>``,
  ``grad_norm/<optimizer>``;
* ``genlab evaluate``: ``FID-digits``, ``KID-mnist``, ``precision-digits``, ``IS``, ``PPL`` ... (a feature net's
  name after the dash, none for Inception);
* anything else (an application's own numbers) is described as itself, in group ``"other"``.

A :class:`MetricInfo` may carry a display ``scale`` (KID is shown ×10³ with unit ``×10⁻³``, so the number shown
times the unit is the value): :func:`display_value` applies it. Conventions may hold ``{fields}`` filled from a
context (``n_real``, ``n_fake``, ``space``) by :func:`describe`; a field the context lacks reads "?".

Pure Python: importing this module imports no torch.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, replace

#: report groups, in the order the report shows them
GROUPS = ("test", "validation", "run", "other")


@dataclass(frozen=True)
class MetricInfo:
    """How one metric key is reported.

    ``group``: ``"test"``, ``"validation"``, ``"run"`` (facts of the run) or ``"other"``; ``label``: a readable
    name; ``unit``: the unit of the *displayed* number (``""`` when dimensionless and obvious); ``convention``:
    what changes the number (sample counts, feature space, estimator); ``better``: ``"lower"``, ``"higher"`` or
    ``None``; ``scale``: displayed = value × scale.
    """

    group: str
    label: str
    unit: str = ""
    convention: str = ""
    better: str | None = None
    scale: float = 1.0


def _m(label, unit="", convention="", better=None, scale=1.0, group="validation") -> MetricInfo:
    return MetricInfo(group, label, unit, convention, better, scale)


_SPACE = "{space_text}"
_MODEL_SPACE = "per value (model space)"
_MS = "; model space: pixels in [0, 1], standardised columns"

#: facts of a run (``final_metrics.json``)
RUN_FACTS: dict[str, MetricInfo] = {
    "model": _m("model", group="run", convention="registered model name"),
    "data": _m("data", group="run", convention="training data (built-in name or path)"),
    "steps": _m("steps", "steps", "training steps done (one batch each)", group="run"),
    "epochs": _m("epochs", "epochs", "passes over the training split done", group="run"),
    "train_seconds": _m("training wall time", "s", "Trainer.fit wall clock, validation and monitors included",
                        group="run"),
    "samples_per_sec": _m("throughput", "samples/s", "training samples per second of training wall time",
                          group="run"),
    "precision": _m("precision", "", "numeric precision of the training steps", group="run"),
    "channels_last": _m("channels last", "", "NHWC memory format for conv nets", group="run"),
    "device": _m("device", "", "where the model trained", group="run"),
    "test_samples": _m("held-out samples", "samples", "size of the split the test numbers use (the test split; "
                       "the validation split when the test split is empty)", group="test"),
    "best_step": _m("best step", "step", "step of the best monitored validation value (checkpoints/best)"),
}

#: held-out numbers at the end of a run (``test_*``)
TEST_KEYS: dict[str, MetricInfo] = {
    "test_mse": _m("test MSE", _MODEL_SPACE, "mean of (reconstruction - input)^2 over samples and values; "
                   "observed values only when data has missing entries" + _MS, "lower", group="test"),
    "pca_mse": _m("PCA MSE", _MODEL_SPACE, "PCA with as many components as the latent size, fit on the train "
                  "split, on the same held-out samples" + _MS, "lower", group="test"),
    "mse_vs_pca": _m("MSE / PCA MSE", "ratio", "test MSE divided by PCA MSE; below 1 beats PCA", "lower",
                     group="test"),
    "test_elbo": _m("ELBO", "nats/sample", "one-sample ELBO, a lower bound on log p(x); natural log, summed over "
                    "values, mean over samples", "higher", group="test"),
    "test_nll": _m("NLL -log p(x)", "nats/sample", "exact negative log-likelihood of the held-out samples "
                   "(autoregressive models); natural log, summed over values, mean over samples", "lower",
                   group="test"),
    "test_bpd": _m("bits/dim", "bits/dim", "exact held-out NLL / (values per sample * ln 2)", "lower", group="test"),
    "test_elbo_given_y": _m("ELBO given y", "nats/sample", "one-sample ELBO of log p(x | y) with the true labels; "
                            "natural log, summed over values", "higher", group="test"),
}

#: keys the Trainer logs (``metrics.jsonl``), also found as ``val_<key>`` / ``best_val_<key>`` in final metrics
LOGGED: dict[str, MetricInfo] = {
    "loss": _m("loss", "objective", "the model's training objective, batch mean (what the optimizer minimises)",
               "lower"),
    "rec": _m("reconstruction NLL -log p(x|z)", "nats/sample", "summed over values, one z per sample, batch mean",
              "lower"),
    "kl": _m("KL(q(z|x) || p(z))", "nats/sample", "closed form, summed over latent dims, batch mean"),
    "kl_weight": _m("KL weight beta(t)", "", "the KL weight of the step (beta after warm-up)"),
    "capacity": _m("KL capacity C(t)", "nats", "target KL of the capacity schedule"),
    "mse": _m("MSE", _MODEL_SPACE, "mean of (reconstruction mean - input)^2" + _MS, "lower"),
    "active_units": _m("active units", "dims", "latent dims with Var_x E[z|x] > 0.01 over the validation split",
                       "higher"),
    "nll": _m("NLL -log p(x)", "nats/sample", "exact negative log-likelihood (autoregressive models), natural log, "
              "summed over values, batch mean", "lower"),
    "bpd": _m("bits/dim", "bits/dim", "exact negative log-likelihood / (values per sample * ln 2)", "lower"),
    "jacobian_norm": _m("Jacobian norm ||dh/dx||_F^2", "", "contractive penalty before its weight lam", "lower"),
    "stress": _m("distance stress", "", "distance-ae: normalised stress between code and input distances in the batch, "
                 "before its weight distance_weight", "lower"),
    "mean_activation": _m("mean |code|", "", "mean absolute code activation"),
    "kl_sparsity": _m("KL sparsity penalty", "nats", "sum over codes of KL(rho || mean activation)"),
    "active_fraction": _m("active code fraction", "fraction", "share of code units active on the validation split"),
    "fid": _m("{fid_label}", "squared feature distance",
              "Frechet distance of " + _SPACE + ", {n_real} real (validation split) vs {n_fake} "
              "generated (trainer.fid_samples), sample noise seed 12345", "lower"),
    "div_entropy": _m("class entropy of samples", "fraction of log K", "entropy of the feature net's predicted-class "
                      "histogram of the samples / log K; 1 = all classes equally often", "higher"),
    "div_classes": _m("classes covered", "classes", "classes holding more than 10 %/K of the samples (feature net)",
                      "higher"),
    "div_ratio": _m("diversity ratio", "ratio", "mean pairwise distance of samples / of real data; near 1 is good"),
    "cond_acc": _m("conditional accuracy", "fraction", "feature net's accuracy on the labels the samples were "
                   "generated for (chance = 1/K)", "higher"),
    "d_loss": _m("D loss", "objective", "discriminator (critic) objective, penalties included", None),
    "g_loss": _m("G loss", "objective", "generator objective, auxiliary terms included", None),
    "d_adv": _m("D adversarial loss", "objective", "the discriminator's adversarial term alone"),
    "g_adv": _m("G adversarial loss", "objective", "the generator's adversarial term alone"),
    "d_real": _m("D(real)", "", "mean D output on real data: a probability for BCE losses, a raw score otherwise"),
    "d_fake": _m("D(fake)", "", "mean D output on generated data before the G step"),
    "d_fake_after": _m("D(fake) after G step", "", "mean D output on the G step's fresh samples"),
    "d_acc": _m("D class accuracy", "fraction", "auxiliary classifier's accuracy on real data", "higher"),
    "d_cls": _m("D class loss", "nats", "cross-entropy of D's auxiliary classifier on real data, times cls_weight"),
    "g_cls": _m("G class loss", "nats", "cross-entropy of D's classifier on generated data, times cls_weight"),
    "wasserstein": _m("Wasserstein estimate", "critic units", "mean critic(real) - mean critic(fake)"),
    "gp": _m("gradient penalty", "", "gp_weight * (||grad critic|| - 1)^2, batch mean"),
    "r1": _m("R1 penalty", "", "r1_gamma / 2 * E||grad_x D(x)||^2 at the real batch (x the [0, 1] image), times "
             "r1_every on the lazy steps that take it"),
    "r2": _m("R2 penalty", "", "r2_gamma / 2 * E||grad_x D(x)||^2 at the generated batch"),
    "pl": _m("path-length penalty", "", "stylegan: pl_weight * (||J_w^T y|| - running mean)^2, times pl_every"),
    "drift": _m("drift penalty", "", "progan: drift * mean D(real)^2"),
    "alpha": _m("fade-in alpha", "fraction", "progan: weight of the newest resolution during its fade-in (1 = done)"),
    "stage": _m("growth stage", "", "progan: index of the current resolution (0 = 4x4)"),
}

#: ``family/<member>`` keys: one entry per family (``{member}`` in the label is the optimizer's name)
FAMILIES: dict[str, MetricInfo] = {
    "loss": _m("loss ({member})", "objective", "objective of optimizer {member!r}", "lower"),
    "lr": _m("learning rate ({member})", "", "learning rate of optimizer {member!r} at the step"),
    "grad_norm": _m("gradient norm ({member})", "L2", "global L2 norm of the gradients of optimizer {member!r} "
                    "before clipping"),
}

#: ``genlab evaluate`` (keys ``<NAME>`` or ``<NAME>-<feature net>``)
EVALUATION: dict[str, MetricInfo] = {
    "FID": _m("FID{suffix}", "squared feature distance",
              "Frechet distance of " + _SPACE + " (sample counts: the result's n_real, n_fake); "
              "covariances with N-1", "lower", group="test"),
    "KID": _m("KID{suffix}", "x10^-3", "unbiased MMD^2, cubic polynomial kernel, mean over subsets of "
              + _SPACE, "lower", 1e3, group="test"),
    "KID_std": _m("KID{suffix} std", "x10^-3", "population std of the per-subset MMD^2", None, 1e3, group="test"),
    "IS": _m("Inception Score{suffix}", "", "exp E[KL(p(y|x) || p(y))] of the generated samples", "higher",
             group="test"),
    "IS_std": _m("Inception Score{suffix} std", "", "std over splits", None, group="test"),
    "IS_real": _m("Inception Score{suffix} of real data", "", "the same on the real samples (reference)",
                  group="test"),
    "IS_real_std": _m("Inception Score{suffix} of real data, std", "", "std over splits", group="test"),
    "precision": _m("precision{suffix}", "fraction", "improved precision (Kynkaanniemi et al. 2019), k=3 "
                    "nearest neighbours", "higher", group="test"),
    "recall": _m("recall{suffix}", "fraction", "improved recall (Kynkaanniemi et al. 2019), k=3", "higher",
                 group="test"),
    "density": _m("density{suffix}", "", "density (Naeem et al. 2020), k=5; may exceed 1", "higher", group="test"),
    "coverage": _m("coverage{suffix}", "fraction", "coverage (Naeem et al. 2020), k=5", "higher", group="test"),
    "PPL": _m("perceptual path length", "", "epsilon 1e-4, lerp in z, squared L2 of features / epsilon^2",
              "lower", group="test"),
    "SWD": _m("SWD", "x10^-3", "sliced Wasserstein distance of random 7x7 Laplacian-pyramid patches "
              "(Karras et al. 2018), mean over levels; on the images, no feature net", "lower", group="test"),
}

_SPACE_TEXT = {"digits": "genlab digits feature net (8x8) features", "mnist": "genlab MNIST feature net features",
               "raw": "the standardised columns", "inception": "Inception-V3 pool features",
               "custom": "custom extractor features"}
_IWAE = re.compile(r"^test_iwae_k(\d+)(_given_y)?$")


def _fill(text: str, ctx: dict) -> str:
    fields = {f for _, f, _, _ in string.Formatter().parse(text) if f}
    return text.format(**{f.split("!")[0]: ctx.get(f.split("!")[0], "?") for f in fields})


def _filled(info: MetricInfo, ctx: dict, group: str | None = None) -> MetricInfo:
    return replace(info, group=group or info.group, label=_fill(info.label, ctx), unit=_fill(info.unit, ctx),
                   convention=_fill(info.convention, ctx))


def _context(context: dict | None, **extra) -> dict:
    ctx = dict(context or {})
    space = ctx.get("space")
    ctx.setdefault("space_text", _SPACE_TEXT.get(space, f"{space} features") if space else "features")
    ctx.setdefault("fid_label", f"FID-{space}" if space else "FID")
    ctx.update(extra)
    return ctx


def lookup(key: str, context: dict | None = None) -> MetricInfo | None:
    """:class:`MetricInfo` for ``key`` (any spelling listed in the module docstring), or ``None`` when genlab
    does not know it. ``context`` fills the conventions: ``space`` (feature space: ``digits``, ``mnist``,
    ``raw``, ``inception``), ``n_real``, ``n_fake``; ``evaluation=True`` reads ``precision``/``recall`` as
    ``genlab evaluate``'s metrics rather than the run's numeric precision."""
    ctx = _context(context)
    name, dash, net = key.partition("-")
    if ctx.get("evaluation") and name in EVALUATION:  # genlab evaluate: plain "precision" is the metric
        return _filled(EVALUATION[name], _context({**ctx, "space": net if dash else "inception"},
                                                  suffix=f"-{net}" if dash else ""))
    if key in RUN_FACTS:
        return _filled(RUN_FACTS[key], ctx)
    if key in TEST_KEYS:
        return _filled(TEST_KEYS[key], ctx)
    m = _IWAE.match(key)
    if m:
        cond = bool(m.group(2))
        return MetricInfo("test", f"IWAE log p(x{' | y' if cond else ''}) bound (k={m.group(1)})", "nats/sample",
                          f"importance-weighted bound with k={m.group(1)} samples per input (Burda et al.); "
                          f"natural log, mean over samples{'; true labels' if cond else ''}; -value = NLL",
                          "higher")
    if key.startswith("best_val_"):
        inner = lookup(key[len("best_val_"):], context)
        if inner is not None:
            return replace(inner, group="validation", label=f"best {inner.label}",
                           convention=f"best monitored value (checkpoints/best); {inner.convention}")
    if key.startswith("test_") and key[5:] in LOGGED:  # a logged quantity measured on the held-out split
        inner = _filled(LOGGED[key[5:]], ctx)
        return replace(inner, group="test", label=f"test {inner.label}")
    if key.startswith("val_"):
        inner = lookup(key[len("val_"):], context)
        if inner is not None and inner.group == "validation":
            return replace(inner, convention=f"last validation; {inner.convention}")
    family, slash, member = key.partition("/")
    if slash and family in FAMILIES and member:
        return _filled(FAMILIES[family], {**ctx, "member": member})
    if key in LOGGED:
        return _filled(LOGGED[key], ctx)
    if name in EVALUATION:
        space = net if dash else "inception"
        return _filled(EVALUATION[name], _context({**(context or {}), "space": space},
                                                  suffix=f"-{net}" if dash else ""))
    return None


def describe(key: str, context: dict | None = None) -> MetricInfo:
    """Like :func:`lookup`, but an unknown key is described as itself (group ``"other"``, no unit)."""
    return lookup(key, context) or MetricInfo("other", key)


def display_value(key: str, value, context: dict | None = None):
    """``value`` as displayed beside :func:`describe`'s unit (scaled: KID ×10³); non-numbers unchanged."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    scale = describe(key, context).scale
    return value * scale if scale != 1.0 else value


def format_value(value) -> str:
    """A number with 6 significant digits (integers as they are); anything else as ``str``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    return "null" if value is None else str(value)

"""genlab command line. Thin: parses, calls the library, renders progress and tables.

Errors caused by input (GenlabError) print one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from . import __version__

# Imports are lazy (inside the commands): ``genlab --help`` and ``genlab models`` never import torch.
log = logging.getLogger("genlab")

EXAMPLES = {
    "train": "example: genlab train vae --data digits trainer.epochs=20 model.latent_dim=8 --out runs/vae\n"
             "example: genlab train vae --data train.npz --val-data val.npz --test-data test.npz test.iwae_k=1000",
    "sample": "example: genlab sample runs/vae -n 64 -o samples.png\n"
              "example: genlab sample runs/cvae -n 100 --labels 0,1,2,3,4,5,6,7,8,9 -o grid.png\n"
              "example: genlab sample runs/vae -n 1000 -o s.png   (writes s-000.png ... s-003.png, 256 per grid)",
    "reconstruct": "example: genlab reconstruct runs/vae -n 16 -o recon.png",
    "info": "example: genlab info runs/vae",
    "models": "example: genlab models\nexample: genlab models --check   (imports every model, reports broken ones)",
    "datasets": "example: genlab datasets",
    "demo": "example: genlab demo --out runs/demo\nexample: genlab demo trainer.epochs=1 --out runs/quick-demo",
    "evaluate": "example: genlab evaluate runs/vae --metrics fid,kid,pr,dc -n 5000\n"
                "example: genlab evaluate --real real_images/ --fake samples.npz --json",
}

#: where ``genlab demo`` writes by default (and replaces an earlier demo there)
DEMO_OUT = "runs/demo"

#: what a command writing images or arrays writes (one wording for sample, reconstruct, decompress)
PNG_NPZ = ".png image grid (more than 256 images: one grid per 256, NAME-000.png, ...) or .npz arrays"


def examples() -> dict[str, str]:
    """Every command's usage example: the built-in ones and the application commands'."""
    from .commands import command_modules
    return {**EXAMPLES, **{m.NAME: m.EXAMPLE for m in command_modules()}}


def _table(*args, **kw):
    from .commands._common import metrics_table
    return metrics_table(*args, **kw)


def _print_metrics(*args, **kw):
    from .commands._common import print_metrics
    return print_metrics(*args, **kw)


def _run_training(args, model_name, sections, out, resume=None, overwrite=False) -> int:
    from .runs import train

    run = train(model_name, out=out, config=sections, resume=resume, overwrite=overwrite,
                progress=getattr(args, "progress", None))
    if _torchrun_follower():  # rank > 0 of a torchrun launch: rank 0 reports
        return 0
    if run.result is None:
        print(f"{run.out_dir} already finished; nothing to do (raise trainer.epochs to extend it)")
        return 0
    _print_metrics(run.metrics, f"{run.spec.model} on {run.spec.data.name}")
    if run.out_dir is not None:
        print(f"run folder: {run.out_dir}")
        print(f"report: {run.report.resolve()}")
    return 0


def cmd_train(args) -> int:
    from .config import apply_overrides, read_config_file

    from .errors import ConfigError

    if getattr(args, "nproc", None) is not None:
        return _launch_torchrun(args)
    if args.model and "=" in args.model:  # ``train --resume RUN trainer.epochs=2``: an override, not a name
        args.overrides = [args.model, *args.overrides]
        args.model = None
    sections = read_config_file(args.config) if args.config else {}
    if args.data:
        sections.setdefault("data", {})["name"] = args.data
    if args.data_dir:
        sections.setdefault("data", {})["data_dir"] = args.data_dir
    for flag, role, value in (("--val-data", "val", args.val_data), ("--test-data", "test", args.test_data)):
        if value:
            sections.setdefault("data", {})[f"{role}_data"] = value
            sections["data"].pop(role, None)  # the file replaces a config file's fraction
    if args.no_test:
        sections.setdefault("test", {})["enabled"] = False
    given = apply_overrides({}, args.overrides)
    if args.no_test:  # the end-of-run evaluation is skipped: what only it reads would be ignored
        test = given.get("test") if isinstance(given.get("test"), dict) else {}
        unused = (["--test-data"] if args.test_data else []) + [f"test.{k}" for k in test if k != "enabled"]
        if unused:
            raise ConfigError(f"--no-test skips the test evaluation, so {', '.join(unused)} would do nothing; drop "
                              f"{'it' if len(unused) == 1 else 'them'} (or --no-test)")
    for flag, key, value in (("--data", "name", args.data), ("--data-dir", "data_dir", args.data_dir),
                             ("--val-data", "val_data", args.val_data), ("--test-data", "test_data", args.test_data)):
        other = given.get("data", {}).get(key) if isinstance(given.get("data"), dict) else None
        if value and other is not None and str(other) != value:
            raise ConfigError(f"{flag} {value} and data.{key}={other} disagree; give the data set once")
    sections = apply_overrides(sections, args.overrides)
    if args.resume:
        if args.model:
            raise ConfigError(f"--resume continues the run's own model; drop the model name {args.model!r}")
        if args.data or args.data_dir or args.val_data or args.test_data:
            raise ConfigError("--resume uses the run's own data; drop --data/--data-dir/--val-data/--test-data")
        if args.overwrite:
            raise ConfigError("--resume and --overwrite contradict each other; give one of them")
        return _run_training(args, None, sections, args.out, resume=args.resume)
    if not args.model:
        raise ConfigError("give a model name (genlab models lists them) or --resume RUN")
    out = args.out or f"runs/{args.model}-{Path(str(sections.get('data', {}).get('name', 'digits'))).stem}-" \
                      f"{time.strftime('%Y%m%d-%H%M%S')}"
    return _run_training(args, args.model, sections, out, overwrite=args.overwrite)


def cmd_demo(args) -> int:
    from .config import apply_overrides
    from .runs import DEMO_CONFIG
    sections = apply_overrides(json.loads(json.dumps(DEMO_CONFIG)), args.overrides)
    # the default folder is the demo's own: the next demo replaces it; a folder the user names (perhaps a run of
    # theirs) is replaced only with --overwrite, as genlab train does
    return _run_training(args, "vae", sections, args.out or DEMO_OUT, overwrite=args.overwrite or args.out is None)


def _open_model(path: str):
    """The model of a run folder (through :func:`genlab.open_run`) or of a saved model folder."""
    from .io import load
    from .runs import is_run_folder, open_run
    return open_run(path).model if is_run_folder(path) else load(path)


def cmd_sample(args) -> int:
    from .errors import ConfigError
    from .io.sampling import check_sample_count, write_samples
    from .models.base import require
    model = _open_model(args.run)
    check_sample_count(model, args.n, args.output)
    _claim_files(args.output, args.n)
    labels = None
    if args.labels is not None:
        require(model, "conditional", purpose="--labels")
        try:
            labels = [int(v) for v in args.labels.split(",")]
        except ValueError:  # '' too: an empty --labels names no class
            raise ConfigError(f"--labels must be comma-separated integers, got {args.labels!r}") from None
        k = int(model.num_classes)
        bad = [v for v in labels if not 0 <= v < k]
        if bad:
            raise ConfigError(f"--labels {bad[0]} is not a class of this model; use labels 0..{k - 1}")
    psi = getattr(args, "psi", None)
    if psi is not None:  # truncation of style-based generators (stylegan, cstylegan; issue 17)
        from .models.stylegan import check_psi
        check_psi(psi, "--psi (truncation)")
        if not getattr(type(model), "has_w_space", False):
            raise ConfigError(f"--psi truncates style-based generators (stylegan, cstylegan); "
                              f"{getattr(model, 'registry_name', type(model).__name__)!r} has no W space: drop --psi")
    write_samples(model, args.n, args.output, labels=labels, seed=args.seed, progress=args.progress, psi=psi)
    where = args.output
    if Path(args.output).suffix.lower() == ".png":
        from .io.images import describe_paths, grid_paths
        where = describe_paths(grid_paths(args.output, args.n))
    print(f"wrote {args.n} samples to {where}")
    return 0


def _claim_files(output: str, n_images: int) -> None:
    """Refuse, before anything is sampled or written, an output that would replace a file: ``output`` itself, or
    the ``NAME-000.png ...`` grids that ``n_images`` images need (``save_grids``); a path through a file too."""
    from .commands._common import claim_outputs
    from .io.images import grid_paths
    paths = grid_paths(output, n_images) if Path(output).suffix.lower() == ".png" else [Path(output)]
    claim_outputs(files=[("-o", p) for p in paths])


def _save_output(model, x, output: str) -> None:
    import numpy as np

    from .errors import ConfigError
    from .io.atomic import write_bytes_atomic
    out = Path(output)
    if out.suffix == ".npz":
        import io
        from .data import Normalization
        buf = io.BytesIO()
        raw = Normalization.from_dict(model.data_info["norm"]).to_raw(x.cpu())
        np.savez(buf, x=x.cpu().numpy(), raw=raw.numpy())
        write_bytes_atomic(out, buf.getvalue())
    elif out.suffix.lower() == ".png":
        if model.kind != "image":
            raise ConfigError(f"{output}: PNG output needs an image model; use a .npz output for tabular data")
        from .io.images import save_grids
        save_grids(x, out)
    else:
        raise ConfigError(f"unsupported output {output!r}; use a .png (image grid) or .npz file")


def cmd_reconstruct(args) -> int:
    from .data import load_dataset
    from .errors import ConfigError
    from .io.images import describe_paths, save_grids
    from .models.base import capabilities, require
    from .runs import is_run_folder, open_run
    if args.n < 1:
        raise ConfigError(f"-n must be >= 1 (inputs to reconstruct), got {args.n}")
    run = open_run(args.run) if is_run_folder(args.run) else None
    model = run.model if run is not None else _open_model(args.run)
    require(model, "can_reconstruct", purpose="genlab reconstruct")
    if args.data:
        ds = load_dataset(args.data, data_dir=args.data_dir)
    elif run is None:
        raise ConfigError(f"{args.run} is a saved model, not a run folder (it records no data); pass --data to say "
                          "what to reconstruct")
    else:
        ds = run.splits.test if len(run.splits.test) else run.splits.val
    x = ds.x[:args.n]
    png = Path(args.output).suffix.lower() == ".png" and model.kind == "image"
    _claim_files(args.output, len(_pair_rows(x, x)[0]) if png else 1)
    labels = ds.y[:args.n] if capabilities(model)["conditional"] and ds.y is not None else None
    rec = model.reconstruct(x, labels) if labels is not None else model.reconstruct(x)
    where = args.output
    if png:
        images, width = _pair_rows(x, rec.cpu())
        where = describe_paths(save_grids(images, args.output, nrow=width))
    else:
        _save_output(model, rec, args.output)
    mse = float(((rec.cpu() - x) ** 2).mean())
    print(f"wrote {len(x)} inputs and reconstructions to {where} (MSE {mse:.5g})")
    return 0


def _pair_rows(x, rec, width: int = 16):
    """Inputs above their reconstructions, ``width`` per row (a short last row padded with white tiles):
    ``(images, nrow)`` for :func:`genlab.io.images.save_grids` (256 images per file = 8 pairs of rows)."""
    import torch
    w = min(width, len(x))
    rows = []
    for i in range(0, len(x), w):
        for part in (x[i:i + w], rec[i:i + w]):
            pad = torch.ones((w - len(part), *part.shape[1:]), dtype=part.dtype)
            rows.append(torch.cat([part, pad]))
    return torch.cat(rows), w
    return 0


def cmd_info(args) -> int:
    from rich.console import Console

    from .runs import is_run_folder, open_run
    if is_run_folder(args.run):
        run = open_run(args.run)
        rows = _run_rows(run)
        title = f"genlab run: {run.model_name}"
    else:
        from .io import load
        from .io.serialize import find_model_dir, read_record
        folder = find_model_dir(args.run)
        rec = read_record(folder)
        model = load(args.run)
        rows = [("model", rec["model"]), ("model class", _class_row(model)), ("folder", str(folder)),
                ("genlab version", rec.get("genlab_version")),
                ("parameters", f"{sum(p.numel() for p in model.parameters()):,}"), ("data", rec["data"].get("name")),
                ("sample shape", tuple(rec["data"].get("shape", ()))), ("classes", rec["data"].get("num_classes"))]
        rows += [(f"config.{k}", json.dumps(v)) for k, v in rec["config"].items()]
        title = f"genlab {rec['model']}"
    Console().print(_table(title, rows, ("key", "value")))
    return 0


def _class_row(model) -> str:
    """Where the model's class lives and the distribution that provides it (``genlab info``)."""
    from .registry import model_location
    loc = model_location(model)
    dist = loc["distribution"]
    return loc["class"] + (f" ({dist['name']} {dist['version']})" if dist else " (user code)")


def _run_rows(run) -> list[tuple]:
    """``genlab info`` rows of a run folder: model, data and splits, every config section, checkpoints, results."""
    from .config import to_dict
    info = run.data_info
    rows = [("model", run.model_name), ("model class", _class_row(run.model)), ("folder", str(run.path)),
            ("genlab version", run.genlab_version),
            ("parameters", f"{sum(p.numel() for p in run.model.parameters()):,}"), ("data", info.name),
            ("data kind", info.kind), ("sample shape", info.shape), ("classes", info.num_classes)]
    if run.split_sizes:
        rows.append(("split sizes", ", ".join(f"{k} {v}" for k, v in run.split_sizes.items())))
    for role, src in run.sources.items():
        where = src.get("path") or src.get("name")
        rows.append((f"source.{role}", f"{src.get('origin')}: {where} ({src.get('n')} samples, sha256 "
                                       f"{str(src.get('sha256'))[:12]})"))
    rows += [(f"model.{k}", json.dumps(v)) for k, v in run.spec.model_config.items()]
    for section, cfg in (("trainer", run.trainer_config), ("data", run.data_config), ("test", run.test_config)):
        rows += [(f"{section}.{k}", json.dumps(v)) for k, v in to_dict(cfg).items()]
    rows.append(("checkpoints", ", ".join(run.checkpoints) or "none"))
    rows += [(f"final.{k}", v) for k, v in run.metrics.items()]
    return rows


def cmd_evaluate(args) -> int:
    from .errors import ConfigError
    from .evaluation import evaluate_run, evaluate_sets, parse_metrics

    metrics = parse_metrics(args.metrics)
    common = dict(metrics=metrics, features=args.features, use_cache=not args.no_cache,
                  inception_weights=args.inception_weights, cache=args.cache_dir, progress=args.progress)
    if args.run and (args.real or args.fake):
        raise ConfigError("give either a RUN or --real A --fake B, not both")
    if args.no_cache and args.cache_dir:
        raise ConfigError("--no-cache neither reads nor writes the real-feature cache, so --cache-dir would do nothing; "
                          "drop one of them")
    if args.inception_weights and args.features in ("digits", "mnist"):
        raise ConfigError(f"--inception-weights are the Inception net's, but --features {args.features} uses genlab's "
                          "own feature net; drop --inception-weights (or use --features inception)")
    if args.run:
        res = evaluate_run(args.run, split=args.split or "train", n=10_000 if args.n is None else args.n,
                           seed=args.seed or 0, **common)
    elif args.real and args.fake:
        unused = [f for f, v in (("-n", args.n), ("--split", args.split), ("--seed", args.seed)) if v is not None]
        if unused:
            raise ConfigError(f"{', '.join(unused)} choose{'s' if len(unused) == 1 else ''} the samples and real split "
                              f"of a RUN; --real/--fake compare the given sets as they are, so drop "
                              f"{'it' if len(unused) == 1 else 'them'}")
        res = evaluate_sets(args.real, args.fake, **common)
    else:
        raise ConfigError("give a RUN folder to evaluate, or both --real A and --fake B")
    if args.json:
        print(json.dumps(res, indent=2, default=float))
    else:
        from rich.console import Console
        con = Console()
        con.print(_table(f"{res['n_fake']} generated vs {res['n_real']} real, features {res['extractor']['name']}",
                         list(res["metrics"].items()), ("metric", "value"),
                         context={"evaluation": True, "n_real": res["n_real"], "n_fake": res["n_fake"]}))
        for k, v in res["conventions"].items():
            con.print(f"[dim]{k}: {v}[/dim]")
    return 0


def cmd_models(args) -> int:
    from rich.console import Console

    from .commands._listing import model_entries
    rows = [(e.name, e.summary, e.source) for e in model_entries(live=args.check)]
    Console().print(_table("genlab models", rows, ("name", "summary", "from")))
    return 0


def cmd_datasets(args) -> int:
    from rich.console import Console

    from .data import list_datasets
    Console().print(_table("built-in data sets (or give a folder, .npz, .npy or .csv path)", list_datasets(),
                           ("name", "summary")))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse's parser with one-line errors: ``PROG: error: MESSAGE; see 'PROG --help'`` on stderr and exit 2,
    without the usage block argparse prints above it (the CLI's rule for every bad input). Sub-command parsers are
    of the same class (``add_subparsers`` builds them with ``type(self)``)."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        message = " ".join(str(message).split())  # argparse wraps long choice lists over lines
        self.exit(2, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    from .commands._common import add_out_argument, seed_value
    p = _Parser(prog="genlab", description="Train, evaluate and apply deep generative models.",
                epilog="example: genlab demo   (trains a conv VAE on digits, writes a report)")
    p.add_argument("--version", action="version", version=f"genlab {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, func, help_, example=None):
        sp = sub.add_parser(name, help=help_, description=help_, epilog=example or EXAMPLES[name],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.set_defaults(func=func)
        sp.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
        sp.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show (or hide) progress bars on stderr (default: shown on a terminal, not under CI; "
                        "GENLAB_PROGRESS=1/0 overrides)")
        return sp

    t = add("train", cmd_train, "Train a registered model and write a run folder.")
    t.add_argument("model", nargs="?", help="model name (see: genlab models)")
    t.add_argument("--data", help="built-in data set name or a path (folder, .npz, .npy, .csv)")
    t.add_argument("--data-dir", help="where mnist/fashion-mnist/cifar10 files live (default $GENLAB_DATA)")
    t.add_argument("--val-data", help="validation data (built-in name or path) instead of the fraction data.val")
    t.add_argument("--test-data", help="test data (built-in name or path) instead of the fraction data.test")
    t.add_argument("--no-test", action="store_true", help="skip the end-of-run test evaluation (test.enabled=false;"
                   " test.iwae_k=K sets the IWAE samples, 0 = no IWAE bound)")
    t.add_argument("--config", help="YAML/JSON run config with sections model, trainer, data")
    t.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                   help="dotted overrides, e.g. trainer.epochs=5")
    add_out_argument(t, "run folder (default runs/MODEL-DATA-TIME)")
    t.add_argument("--resume", metavar="RUN", help="continue an interrupted run from RUN/checkpoints/last")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder at --out")
    t.add_argument("--nproc", type=int, metavar="N", help="train with N processes on this machine: runs torchrun "
                   "--standalone --nproc_per_node N -m genlab train ... (docs/distributed.md)")

    s = add("sample", cmd_sample, "Draw samples from a trained model.")
    s.add_argument("run", help="run folder or saved model folder")
    s.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    add_out_argument(s, f"{PNG_NPZ} (samples x, raw)", dest="output", default="samples.png")
    s.add_argument("--seed", type=seed_value, default=0, help="sampling seed (default 0)")
    s.add_argument("--labels", help="conditional models: comma-separated class labels, cycled over the n samples")
    s.add_argument("--psi", type=float, help="stylegan/cstylegan: truncation psi in (0, 1] (1 = none, 0.7 = "
                   "the paper's figures)")

    r = add("reconstruct", cmd_reconstruct, "Reconstruct held-out inputs (inputs above outputs).")
    r.add_argument("run", help="run folder or saved model folder")
    r.add_argument("-n", type=int, default=16, help="number of inputs (default 16)")
    add_out_argument(r, f"{PNG_NPZ} (inputs above reconstructions)", dest="output", default="reconstructions.png")
    r.add_argument("--data", help="data to reconstruct (default: the run's test split)")
    r.add_argument("--data-dir")

    i = add("info", cmd_info, "Describe a run or saved model.")
    i.add_argument("run", help="run folder or saved model folder")

    e = add("evaluate", cmd_evaluate, "Score a trained generator (or two image sets) with FID, KID, IS, "
                                     "precision/recall, density/coverage, PPL and SWD.")
    e.add_argument("run", nargs="?", help="run folder of a model that can sample")
    e.add_argument("--metrics", default="fid,kid,pr,dc", help="comma list of fid,kid,is,pr,dc,ppl,swd "
                   "(default fid,kid,pr,dc; swd: ProGAN's sliced Wasserstein distance on the images)")
    e.add_argument("-n", type=int, default=None, help="generated samples of a RUN (default 10000)")
    e.add_argument("--features", default="auto", help="auto (genlab net for 8x8 / 28x28, else inception), "
                   "digits, mnist or inception")
    e.add_argument("--split", default=None, help="real set of a RUN: train, val, test or all (default train)")
    e.add_argument("--real", help="real images: folder, .npz or .npy")
    e.add_argument("--fake", help="generated images: folder, .npz or .npy")
    e.add_argument("--seed", type=seed_value, default=None, help="sampling seed of a RUN's samples (default 0)")
    e.add_argument("--json", action="store_true", help="print every number and convention as JSON")
    e.add_argument("--inception-weights", help="path of pt_inception-2015-12-05-6726825d.pth "
                   "(default $GENLAB_INCEPTION)")
    e.add_argument("--cache-dir", help="real-feature cache (default $GENLAB_CACHE/stats or ~/.cache/genlab/stats)")
    e.add_argument("--no-cache", action="store_true", help="neither read nor write the real-feature cache")

    m = add("models", cmd_models, "List registered models (built-in and entry-point models; read without importing "
                                  "them).")
    m.add_argument("--check", action="store_true", help="import every model instead (slower) and report entry "
                   "points that fail to load")
    add("datasets", cmd_datasets, "List built-in data sets.")
    from .commands import command_modules
    for mod in command_modules():  # application commands (genlab/commands/*.py)
        mod.add_arguments(add(mod.NAME, mod.run, mod.HELP, mod.EXAMPLE))

    d = add("demo", cmd_demo, "Train a conv VAE on the built-in digits and write a run folder with a report.")
    add_out_argument(d, f"run folder (default {DEMO_OUT}, which the next demo replaces; a folder given here must be "
                     "new or empty, or pass --overwrite)")
    d.add_argument("--overwrite", action="store_true", help="replace an earlier genlab run at --out")
    d.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                   help="dotted overrides of the demo config, e.g. "
                   "trainer.epochs=1")
    return p


# -- train --nproc: multi-process training through torchrun (docs/distributed.md) ------------------------------
def _torchrun_env() -> tuple[int, int]:
    """``(rank, world size)`` from torchrun's environment without importing torch (this runs in the error handler
    and at the exit of every command); ``(0, 1)`` without it or when it is not made of integers."""
    try:
        return int(os.environ.get("RANK") or 0), int(os.environ.get("WORLD_SIZE") or 1)
    except ValueError:
        return 0, 1


def _torchrun_follower() -> bool:
    """``genlab.training.distributed.is_follower`` read from the environment without importing torch."""
    rank, size = _torchrun_env()
    return size > 1 and rank > 0


def exit_worker(rc: int) -> None:
    """End a torchrun worker (``WORLD_SIZE`` > 1) once its command has returned: flush the terminal and the
    logging handlers, run the ``atexit`` functions, then ``os._exit(rc)``. No-op outside torchrun.

    By then the Trainer has destroyed the process group and every file is closed, so what is skipped is only the
    interpreter's teardown of C++ objects (gloo, the intra-op thread pool) in arbitrary order: a rank that had
    finished its run was once stopped, probably there, by ``std::terminate`` (exit code -6, CI, 2026-12-06; not
    reproduced in 102 runs, 80 of them beside CPU load), and torchrun then reported the whole run as failed."""
    if _torchrun_env()[1] <= 1:  # a single process: the ordinary exit
        return
    import atexit

    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or a broken pipe: nothing left to flush
            pass
    os._exit(rc if isinstance(rc, int) else 1)


#: Set by ``genlab train --nproc`` for its workers: a folder where a worker leaves its one-line error.
WORKER_ERRORS_ENV = "GENLAB_WORKER_ERRORS"


def _hand_error_to_launcher(msg: str) -> bool:
    """Under ``genlab train --nproc``: write this worker's error line to ``<folder>/rank<R>.txt`` (atomically) for
    the launcher to print, and return True. A worker that printed it itself could be stopped by torchrun first
    (another rank failing with the same error makes torchrun terminate the rest at once), and the line was lost."""
    folder = os.environ.get(WORKER_ERRORS_ENV)
    if not folder or not os.path.isdir(folder):
        return False
    rank = _torchrun_env()[0]
    tmp = Path(folder) / f".rank{rank}.tmp"
    try:
        tmp.write_text(msg + "\n")
        os.replace(tmp, Path(folder) / f"rank{rank}.txt")
    except OSError:
        return False
    return True


def _worker_error(folder: str, rank: int) -> str | None:
    """The error line rank ``rank`` left (else the lowest rank's that left one), or None."""
    files = sorted(Path(folder).glob("rank*.txt"), key=lambda f: (f.name != f"rank{rank}.txt", f.name))
    for f in files:
        line = f.read_text().strip()
        if line:
            return line
    return None


def _replicated_error(e) -> bool:
    """Whether this is a rank > 0 of a torchrun launch refusing its input (config, data, checkpoint): every rank
    runs the same checks on the same input, so rank 0 prints the same line and this rank stays silent."""
    from .errors import CheckpointError, ConfigError, DataError
    return isinstance(e, (ConfigError, DataError, CheckpointError)) and _torchrun_follower()


def _launch_torchrun(args) -> int:
    """``genlab train ... --nproc N`` = ``torchrun --standalone --nproc_per_node N -m genlab train ...`` (the same
    arguments without ``--nproc``), run in this process through ``torch.distributed.run``. Returns the exit
    status of the first rank that failed (2 for bad input), else 0."""
    from .errors import ConfigError

    n = args.nproc
    if n < 1:
        raise ConfigError(f"--nproc must be >= 1 (processes on this machine), got {n}")
    import torch
    cores, gpus = os.cpu_count() or 1, torch.cuda.device_count() if torch.cuda.is_available() else 0
    limit = 4 * max(cores, gpus)  # one per GPU is the usual; CPU runs may oversubscribe a little to test DDP
    if n > limit:
        raise ConfigError(f"--nproc {n} is more processes than this machine can run ({cores} CPU cores, {gpus} GPUs: "
                          f"at most {limit}, 4 per core or GPU); use one per GPU, e.g. --nproc {max(gpus, 1)}")
    if os.environ.get("WORLD_SIZE"):
        raise ConfigError("--nproc launches torchrun, but this process already runs under torchrun (WORLD_SIZE is "
                          "set); drop --nproc")
    argv, rest = list(args.argv), []
    while argv:
        a = argv.pop(0)
        if a == "--nproc":
            argv.pop(0) if argv else None
        elif not a.startswith("--nproc="):
            rest.append(a)
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args as torchrun_args, run as torchrun

    quiet = [logging.getLogger(name) for name in ("torch.distributed.run", "torch.distributed.elastic",
                                                  "torch.distributed.launcher")]
    levels = [lg.level for lg in quiet]
    if not args.verbose:  # torchrun's own INFO/WARNING lines (rendezvous, OMP_NUM_THREADS) stay out of the way
        for lg in quiet:
            lg.setLevel(logging.ERROR + 10)
    import tempfile

    fault = os.environ.get("PYTHONFAULTHANDLER")
    os.environ["PYTHONFAULTHANDLER"] = fault or "1"  # a rank stopped by a signal prints its Python stack
    errors = tempfile.TemporaryDirectory(prefix="genlab-nproc-")
    os.environ[WORKER_ERRORS_ENV] = errors.name
    try:
        torchrun(torchrun_args(["--standalone", "--nproc_per_node", str(n), "-m", "genlab", *rest]))
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        code = failure.exitcode
        line = _worker_error(errors.name, rank)
        if line is not None:
            print(f"genlab: error: {line}", file=sys.stderr)
        if code is None or code < 0 or code > 255:  # killed by a signal
            print(f"genlab: error: rank {rank} of {n} was stopped (exit code {code})", file=sys.stderr)
            return 1
        return code
    except SignalException:  # Ctrl-C: torchrun passed it on; the ranks agreed on a step and saved checkpoints/last
        return 130
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
        if fault is None:
            os.environ.pop("PYTHONFAULTHANDLER", None)
        os.environ.pop(WORKER_ERRORS_ENV, None)
        errors.cleanup()
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line parsed; ``key=value`` overrides may come after options (``--data digits
    trainer.epochs=3``) in every command that takes them (train, demo, tune and the app commands)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        overrides = [e for e in extra if "=" in e and not e.startswith("-")]
        rest = [e for e in extra if e not in overrides]
        if rest or not isinstance(getattr(args, "overrides", None), list):  # commands with key=value overrides
            command = parser._subparsers._group_actions[0].choices[args.command]  # the error names the command
            command.error(f"unrecognized arguments: {' '.join(rest or extra)}")
        args.overrides = list(args.overrides) + overrides
    return args


def main(argv: list[str] | None = None) -> int:
    from .errors import GenlabError

    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for train --nproc (relaunched under torchrun)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except GenlabError as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if _hand_error_to_launcher(msg):
            pass  # genlab train --nproc prints it once, whichever rank torchrun saw fail first
        elif not _replicated_error(e):
            print(f"genlab: error: {msg}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:  # a hostile size reached an allocation: one line, exit 2
        from .io.memory import first_line, is_out_of_memory
        if not is_out_of_memory(e):
            raise
        print(f"genlab: error: out of memory ({first_line(e)}); lower the sizes asked for (sample counts, copies, "
              "latent_dim, batch size)", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        run_dir = getattr(e, "run_dir", None)
        if run_dir is not None:
            print(f"genlab: interrupted; resume with: genlab train --resume {run_dir}", file=sys.stderr)
        elif hasattr(e, "run_dir"):
            print("genlab: interrupted before the first checkpoint; nothing was kept", file=sys.stderr)
        else:
            print("genlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

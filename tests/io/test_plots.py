"""Training curves: every numeric key of the log is plotted (a model's own losses, FID, accuracy, lr, grad norms),
grouped into panels; the log reader's one-line errors."""
import json

import pytest
from PIL import Image

import genlab
from genlab.errors import CheckpointError
from genlab.io.plots import history_panels, plot_history
from genlab.io.report import read_metrics, write_loss_curves
from tests.conftest import tiny_trainer


def _history():
    recs = []
    for step in range(1, 11):
        recs.append({"step": step, "epoch": (step - 1) // 5, "split": "train", "loss": 5.0 / step,
                     "my_loss": 0.1 * step, "lr/d": 1e-3, "lr/g": 2e-4, "grad_norm/g": 1.0 + step,
                     "note": "text", "flag": True})
        if step % 5 == 0:
            recs.append({"step": step, "epoch": step // 5 - 1, "split": "train_epoch", "loss": 4.0 / step,
                         "my_loss": 0.1 * step})
            recs.append({"step": step, "epoch": step // 5 - 1, "split": "val", "loss": 4.5 / step,
                         "fid": 300.0 / step, "cond_acc": 0.1 * step, "div_entropy": None})
    return recs


def _numeric_keys(history):
    return {k for r in history for k, v in r.items() if k not in ("step", "epoch", "split")
            and isinstance(v, (int, float)) and not isinstance(v, bool)}


def test_every_numeric_key_is_plotted(tmp_path):
    hist = _history()
    panels = history_panels(hist)
    assert list(panels) == ["loss", "my_loss", "fid", "cond_acc", "lr", "grad_norm"]
    assert panels["lr"] == ["lr/d", "lr/g"] and panels["grad_norm"] == ["grad_norm/g"]
    keys = plot_history(hist, tmp_path / "curves.png")
    assert set(keys) == _numeric_keys(hist) == {"loss", "my_loss", "fid", "cond_acc", "lr/d", "lr/g", "grad_norm/g"}
    img = Image.open(tmp_path / "curves.png")
    assert img.format == "PNG" and img.size[0] > 1000 and img.size[1] > 500  # 4 columns, 2 rows of panels
    # a key logged only as null (a NaN), strings and booleans draw nothing; an empty log writes nothing
    assert "div_entropy" not in keys and "note" not in keys and "flag" not in keys
    assert plot_history([{"step": 1, "split": "train", "x": None}], tmp_path / "none.png") == []
    assert not (tmp_path / "none.png").exists()
    assert write_loss_curves([], tmp_path) == {}


def test_a_trained_gan_run_plots_fid_and_its_own_losses(image_data, tmp_path):
    run = genlab.train("gan", image_data, out=tmp_path / "g", config={"trainer": tiny_trainer()})
    hist = read_metrics(run.out_dir / "metrics.jsonl")
    keys = plot_history(hist, tmp_path / "c.png")
    assert set(keys) == _numeric_keys(hist)
    assert {"d_loss", "g_loss", "fid", "loss"} <= set(keys) and any(k.startswith("lr/") for k in keys)
    # a plain key and its family share one panel (validation "loss" beside per-optimizer "loss/d", "loss/g")
    hist.append({"step": 99, "split": "train", "loss/d": 1.0, "loss/g": 2.0})
    assert history_panels(hist)["loss"][:3] == ["loss", "loss/d", "loss/g"]
    assert (run.out_dir / "loss_curves.png").is_file()
    assert "loss_curves.png" in (run.out_dir / "report.html").read_text()


def test_read_metrics(tmp_path):
    f = tmp_path / "metrics.jsonl"
    assert read_metrics(f) == []
    f.write_text('{"step": 1, "loss": 1.0}\n\n{"step": 2, "loss": 0.5}\n{"step": 3, "lo')  # last write cut short
    assert read_metrics(f) == [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}]
    f.write_text('{"step": 1}\n[1, 2]\n')
    with pytest.raises(CheckpointError, match="line 2 is not a JSON record") as e:
        read_metrics(f)
    assert "\n" not in str(e.value)
    f.write_text(json.dumps({"step": 1}) + "\n")
    assert read_metrics(f) == [{"step": 1}]

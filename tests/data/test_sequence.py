"""Sequence data: ``series:`` files (.npy/.npz/CSV in three layouts), the built-in real series from the statsmodels
wheel, time-ordered windows without leakage, and ``prepare_data`` standardising sequences by the training part."""
import importlib.util

import numpy as np
import pytest
import torch

from genlab.data import load_dataset
from genlab.data import sequence as seq
from genlab.data.sequence import split_windows, time_split
from genlab.errors import DataError, MissingFilesError
from genlab.runs import DataConfig, prepare_data


def clock(n=2, c=1, t=100):
    """Series whose values are their time index (+ 1000 * series), so a window shows where it was cut."""
    x = torch.arange(t, dtype=torch.float32).expand(n, c, t) + 1000 * torch.arange(n).view(n, 1, 1)
    return seq.series_dataset(x.numpy(), "clock")


# -- windows -----------------------------------------------------------------------------------------------------
def test_windows_are_split_in_time_without_leakage():
    tr, va, te = split_windows(clock(), window=10, stride=3, val=0.1, test=0.2)
    # T=100: training part steps 0..69, validation part 10 steps (70..79), test part 20 steps (80..99)
    t_tr, t_va, t_te = (d.x % 1000 for d in (tr, va, te))
    assert tr.x.shape[1:] == va.x.shape[1:] == te.x.shape[1:] == (1, 10)
    assert float(t_tr.max()) == 69 and float(t_va.min()) == 70 and float(t_va.max()) == 79
    assert float(t_te.min()) == 80 and float(t_te.max()) == 99
    assert len(tr) == 2 * len(range(0, 61, 3)) and len(va) == 2 and len(te) == 2 * 2
    # windows are consecutive steps; held-out windows do not overlap and the last ends at the part's end
    assert bool((t_tr.diff(dim=2) == 1).all())
    starts = sorted(t_te[:, 0, 0].tolist())
    assert starts == [80, 80, 90, 90]
    assert set((te.x // 1000).flatten().tolist()) == {0.0, 1.0}   # both series contribute
    assert tr.norm is not None and tr.name == "clock"


def test_held_out_parts_hold_at_least_one_window_and_the_tail_is_kept():
    tr, va, te = split_windows(clock(1, 1, 95), window=30, stride=5, val=0.1, test=0.1)
    # val and test parts grow to one window (30 steps) each; the training part keeps 35 steps
    assert float(tr.x.max()) == 34 and len(tr) == 2
    assert (float(va.x.min()), float(va.x.max())) == (35, 64) and (float(te.x.min()), float(te.x.max())) == (65, 94)
    _, va0, te0 = split_windows(clock(1, 1, 95), window=30, val=0.0, test=0.0)
    assert len(va0) == 0 and len(te0) == 0
    a, b, c = time_split(clock(1, 2, 50), val=0.1, test=0.2)
    assert (a.x.shape, b.x.shape, c.x.shape) == ((1, 2, 35), (1, 2, 5), (1, 2, 10))


@pytest.mark.parametrize("kw, match", [
    ({"window": 200}, "longer than the series"),
    ({"window": 40}, "leave"),
    ({"window": 1}, "window must be an integer >= 2"),
    ({"window": 10, "stride": 0}, "stride"),
    ({"window": 10, "val": 1.0}, "outside"),
])
def test_window_errors(kw, match):
    with pytest.raises(DataError, match=match) as e:
        split_windows(clock(1, 1, 100), **kw)
    assert "\n" not in str(e.value)


def test_windows_need_sequences():
    from genlab.testing import tiny_tabular_data
    with pytest.raises(DataError, match="tabular"):
        split_windows(tiny_tabular_data(), window=4)


def test_prepare_data_windows_and_standardises_by_the_training_part():
    splits = prepare_data(DataConfig(name="sunspots", window=64, stride=8))
    tr, va, te = splits.train, splits.val, splits.test
    assert tr.kind == "sequence" and tr.sample_shape == (1, 64) and len(va) == 1 and len(te) == 1
    raw = load_dataset("sunspots").x[0, 0]
    train_part = raw[:309 - 64 - 64]
    windows_raw = tr.norm.to_raw(tr.x)   # the statistics are those of the (overlapping) training windows
    assert torch.allclose(tr.norm.shift.flatten(), windows_raw.mean().reshape(1), atol=1e-3)
    assert torch.allclose(te.norm.to_raw(te.x)[0, 0], raw[-64:], atol=1e-3)     # the test window: the last 64 years
    assert float(tr.norm.to_raw(tr.x).max()) <= float(train_part.max()) + 1e-3


# -- files -------------------------------------------------------------------------------------------------------
def test_npy_and_npz_layouts(tmp_path):
    a = np.arange(12, dtype=np.float64)
    np.save(tmp_path / "one.npy", a)
    np.save(tmp_path / "many.npy", a.reshape(3, 4))
    np.savez(tmp_path / "multi.npz", x=a.reshape(1, 2, 6))
    assert load_dataset(f"series:{tmp_path / 'one.npy'}").x.shape == (1, 1, 12)
    many = load_dataset(f"series:{tmp_path / 'many.npy'}")
    assert many.x.shape == (3, 1, 4) and many.kind == "sequence" and float(many.x[2, 0, 3]) == 11
    assert load_dataset(f"series:rows:{tmp_path / 'multi.npz'}").x.shape == (1, 2, 6)
    np.save(tmp_path / "four.npy", np.zeros((2, 2, 2, 2)))
    with pytest.raises(DataError, match=r"\(T,\), \(N, T\) or \(N, C, T\)"):
        load_dataset(f"series:{tmp_path / 'four.npy'}")


def test_csv_layouts(tmp_path):
    (tmp_path / "cols.csv").write_text("date,a,b\n2020-01,1,10\n2020-02,2,20\n2020-03,3,30\n")
    cols = load_dataset(f"series:{tmp_path / 'cols.csv'}")
    assert cols.x.shape == (2, 1, 3) and cols.x[1, 0].tolist() == [10, 20, 30]
    ch = load_dataset(f"series:channels:{tmp_path / 'cols.csv'}")
    assert ch.x.shape == (1, 2, 3) and ch.x[0, 1].tolist() == [10, 20, 30]
    (tmp_path / "rows.csv").write_text("1,2,3,4\n5,6,7,8\n")
    rows = load_dataset(f"series:rows:{tmp_path / 'rows.csv'}")
    assert rows.x.shape == (2, 1, 4) and rows.x[1, 0].tolist() == [5, 6, 7, 8]
    assert load_dataset(str(tmp_path / "rows.csv")).kind == "tabular"   # without the prefix: a table, as before


@pytest.mark.parametrize("text, match", [
    ("a,b\n1,2\n3,\n", "missing or non-finite"),
    ("a,b\n1,2\n3\n", "same length"),
    ("a,b\n1,x\n", "not a number"),
    ("a\n1\ninf\n", "non-finite"),
    ("date\n2020\n", "only time columns"),
])
def test_bad_csv_is_one_line(tmp_path, text, match):
    (tmp_path / "s.csv").write_text(text)
    with pytest.raises(DataError, match=match) as e:
        load_dataset(f"series:{tmp_path / 's.csv'}")
    assert "\n" not in str(e.value)


def test_bad_specs(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_dataset(f"series:{tmp_path / 'absent.csv'}")
    with pytest.raises(DataError, match="no path"):
        load_dataset("series:rows:")
    (tmp_path / "s.json").write_text("[]")
    with pytest.raises(DataError, match="unsupported"):
        load_dataset(f"series:{tmp_path / 's.json'}")


# -- built-in real series ----------------------------------------------------------------------------------------
def test_builtin_series_from_the_statsmodels_wheel():
    sun = load_dataset("sunspots")
    assert sun.kind == "sequence" and sun.x.shape == (1, 1, 309)
    assert sun.x[0, 0, :3].tolist() == [5, 11, 16] and float(sun.x[0, 0, -1]) == pytest.approx(2.9)
    nile = load_dataset("nile")
    assert nile.x.shape == (1, 1, 100) and float(nile.x[0, 0, 0]) == 1120
    co2 = load_dataset("co2")
    assert co2.x.shape == (1, 1, 2284) and bool(torch.isfinite(co2.x).all())
    assert float(co2.x[0, 0, 0]) == pytest.approx(316.1) and float(co2.x[0, 0, 6]) == pytest.approx(
        (float(co2.x[0, 0, 5]) + float(co2.x[0, 0, 7])) / 2, abs=1e-3)     # 1958-05-10 is a gap: interpolated
    elnino = load_dataset("elnino")
    assert elnino.x.shape == (1, 1, 732) and elnino.x[0, 0, :2].tolist() == pytest.approx([23.11, 24.20])
    with pytest.raises(DataError, match="no official 'test' split"):
        load_dataset("sunspots", split="test")


def test_missing_statsmodels_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "statsmodels" else real(name, *a))
    with pytest.raises(MissingFilesError, match=r"pip install 'genlab\[series\]'") as e:
        load_dataset("sunspots")
    assert "\n" not in str(e.value)


def test_run_folders_record_series_specs_with_an_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "d").mkdir()
    np.savetxt(tmp_path / "d" / "s.csv", np.sin(np.arange(200) * 0.3)[:, None], delimiter=",")
    monkeypatch.chdir(tmp_path / "d")
    cfg = DataConfig(name="series:s.csv", window=20)
    splits = prepare_data(cfg)
    rec = splits.sources["train"]
    assert rec["origin"] == "path" and rec["path"] == f"series:columns:{tmp_path / 'd' / 's.csv'}"
    monkeypatch.chdir(tmp_path)                     # reopened from elsewhere: the recorded path is used
    again = prepare_data(cfg, recorded=splits.sources)
    assert torch.equal(again.train.x, splits.train.x)

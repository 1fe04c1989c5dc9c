import numpy as np
import pytest
import torch
from PIL import Image

from genlab.data import TensorDataset, load_dataset
from genlab.errors import DataError


# ---------------------------------------------------------------- image folders
def _png(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path)
    return path


def test_class_subfolders_grey(tmp_path):
    root = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    arrs = {}
    for cls, n in (("zebra", 2), ("apple", 3)):  # sorted: apple=0, zebra=1
        for i in range(n):
            a = rng.integers(0, 256, (6, 5), dtype=np.uint8)
            arrs[(cls, i)] = a
            _png(root / cls / f"{i}.png", a)
    ds = load_dataset(str(root))
    assert ds.x.shape == (5, 1, 6, 5)
    assert ds.classes == ["apple", "zebra"]
    assert ds.y.tolist() == [0, 0, 0, 1, 1]
    np.testing.assert_allclose(ds.x[0, 0].numpy(), arrs[("apple", 0)] / 255.0, atol=1e-7)
    np.testing.assert_allclose(ds.x[4, 0].numpy(), arrs[("zebra", 1)] / 255.0, atol=1e-7)
    assert float(ds.norm.scale) == 255.0


def test_flat_folder_rgb_and_jpeg(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255
    _png(tmp_path / "a.png", rgb)
    Image.fromarray(rgb).save(tmp_path / "b.JPG", quality=95)
    ds = load_dataset(str(tmp_path))
    assert ds.x.shape == (2, 3, 4, 4) and ds.y is None
    assert ds.x[0, 0].min() == 1.0 and ds.x[0, 1].max() == 0.0
    assert ds.x[1, 0].mean() > 0.9  # JPEG red stays red


def test_mixed_grey_and_rgb_gives_three_channels(tmp_path):
    _png(tmp_path / "c" / "g.png", np.full((3, 3), 100, np.uint8))
    _png(tmp_path / "c" / "r.png", np.zeros((3, 3, 3), np.uint8))
    ds = load_dataset(str(tmp_path))
    assert ds.x.shape == (2, 3, 3, 3)
    assert torch.allclose(ds.x[0], torch.full((3, 3, 3), 100 / 255))


def test_corrupt_png_names_file(tmp_path):
    _png(tmp_path / "ok" / "a.png", np.zeros((8, 8), np.uint8))
    good = _png(tmp_path / "ok" / "b.png", np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))
    data = good.read_bytes()
    bad = tmp_path / "ok" / "broken.png"
    bad.write_bytes(data[: len(data) // 2])
    good.unlink()
    with pytest.raises(DataError, match=r"broken\.png: corrupt"):
        load_dataset(str(tmp_path))


def test_not_an_image_names_file(tmp_path):
    _png(tmp_path / "k" / "a.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "k" / "fake.png").write_bytes(b"hello")
    with pytest.raises(DataError, match=r"fake\.png"):
        load_dataset(str(tmp_path))


def test_mismatched_sizes_names_odd_file(tmp_path):
    _png(tmp_path / "a" / "1.png", np.zeros((8, 8), np.uint8))
    _png(tmp_path / "b" / "2.png", np.zeros((8, 9), np.uint8))
    with pytest.raises(DataError, match=r"2\.png: size 9x8 differs from 8x8"):
        load_dataset(str(tmp_path))


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .png"):
        load_dataset(str(tmp_path / "empty"))


# ---------------------------------------------------------------- arrays
def test_npz_uint8_images_with_labels(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (7, 1, 4, 4), dtype=np.uint8)
    y = np.arange(7) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load_dataset(str(tmp_path / "d.npz"))
    assert ds.x.shape == (7, 1, 4, 4) and ds.y.tolist() == y.tolist()
    np.testing.assert_allclose(ds.x.numpy(), x / 255.0, atol=1e-7)


@pytest.mark.parametrize("kx,ky", [("images", "labels"), ("X", "y")])
def test_npz_alternative_keys(tmp_path, kx, ky):
    np.savez(tmp_path / "d.npz", **{kx: np.zeros((3, 5, 5), np.uint8), ky: np.array([0, 1, 1])})
    ds = load_dataset(str(tmp_path / "d.npz"))
    assert ds.x.shape == (3, 1, 5, 5) and ds.y.tolist() == [0, 1, 1]


def test_npz_unknown_keys(tmp_path):
    np.savez(tmp_path / "d.npz", a=np.zeros((3, 2)), b=np.zeros(3))
    with pytest.raises(DataError, match=r"d\.npz: no samples array; found keys"):
        load_dataset(str(tmp_path / "d.npz"))


def test_npy_float_images_used_as_is(tmp_path):
    x = np.random.default_rng(0).random((4, 3, 2, 2)).astype(np.float32)
    np.save(tmp_path / "f.npy", x)
    ds = load_dataset(str(tmp_path / "f.npy"))
    np.testing.assert_array_equal(ds.x.numpy(), x)


def test_npy_float_images_out_of_range(tmp_path):
    np.save(tmp_path / "f.npy", np.full((2, 1, 2, 2), 3.0, np.float32))
    with pytest.raises(DataError, match=r"f\.npy: float image values span"):
        load_dataset(str(tmp_path / "f.npy"))


def test_npy_nan_in_images(tmp_path):
    x = np.zeros((2, 1, 3, 3), np.float32)
    x[1, 0, 1, 1] = np.nan
    np.save(tmp_path / "n.npy", x)
    with pytest.raises(DataError, match="NaN"):
        load_dataset(str(tmp_path / "n.npy"))


def test_npy_channels_last(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (2, 6, 5, 3), dtype=np.uint8)
    np.save(tmp_path / "hwc.npy", x)
    ds = load_dataset(str(tmp_path / "hwc.npy"))
    assert ds.x.shape == (2, 3, 6, 5)
    np.testing.assert_allclose(ds.x.numpy(), x.transpose(0, 3, 1, 2) / 255.0, atol=1e-7)


def test_npy_tabular_keeps_nan(tmp_path):
    x = np.array([[1.0, np.nan], [3.0, 4.0], [5.0, 6.0]])
    np.save(tmp_path / "t.npy", x)
    ds = load_dataset(str(tmp_path / "t.npy"))
    assert ds.kind == "tabular" and ds.x.shape == (3, 2) and ds.has_missing
    assert float(ds.norm.scale) == 1.0 and float(ds.norm.shift) == 0.0
    assert torch.isnan(ds.x[0, 1]) and ds.x[2, 1] == 6.0


def test_npy_object_array_refused(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"o\.npy: the array holds Python objects"):
        load_dataset(str(tmp_path / "o.npy"))


def test_truncated_npy(tmp_path):
    np.save(tmp_path / "t.npy", np.zeros((100, 10)))
    p = tmp_path / "t.npy"
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(DataError, match=r"t\.npy"):
        load_dataset(str(p))


def test_fractional_labels_refused(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 3)), y=np.array([0.5, 1.0]))
    with pytest.raises(DataError, match="whole numbers"):
        load_dataset(str(tmp_path / "d.npz"))


# ---------------------------------------------------------------- CSV
def test_csv_header_nan_and_label_column(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b,label,c\n1,2,0,3\n4,,1,NA\n7,nan,1,9\n")
    ds = load_dataset(str(p))
    assert ds.kind == "tabular" and ds.x.shape == (3, 3)
    assert ds.y.tolist() == [0, 1, 1]
    x = ds.x.numpy()
    np.testing.assert_array_equal(np.isnan(x), [[0, 0, 0], [0, 1, 1], [0, 1, 0]])
    assert x[0].tolist() == [1, 2, 3] and x[2, 2] == 9
    assert ds.columns == ("a", "b", "c")  # the header without the label column
    train, val, _ = ds.split(val=0.34, test=0.0)  # subsets, standardisation and devices keep the names
    assert train.columns == val.columns == ds.standardized().columns == ds.to("cpu").columns == ("a", "b", "c")


def test_csv_without_header_is_all_data(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("1.5,2\n3,4e1\n")
    ds = load_dataset(str(p))
    assert ds.y is None and ds.x.tolist() == [[1.5, 2.0], [3.0, 40.0]] and ds.columns is None


def test_csv_y_column_and_semicolons(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("Y;f1\n2;0.5\n0;0.25\n")
    ds = load_dataset(str(p))
    assert ds.y.tolist() == [2, 0] and ds.x.tolist() == [[0.5], [0.25]]


def test_csv_text_cell_names_row_and_column(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b\n1,2\n3,oops\n")
    with pytest.raises(DataError, match=r"t\.csv: row 3, column 'b' holds 'oops'"):
        load_dataset(str(p))


def test_csv_ragged_row(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("1,2\n3\n")
    with pytest.raises(DataError, match=r"t\.csv: row 2 has 1 columns, expected 2"):
        load_dataset(str(p))


def test_unknown_name_lists_builtins(tmp_path):
    with pytest.raises(DataError, match="not a built-in .*digits.*mnist5k.*mnist.*fashion-mnist.*cifar10"):
        load_dataset(str(tmp_path / "nope"))


def test_unsupported_extension(tmp_path):
    (tmp_path / "a.parquet").write_bytes(b"x")
    with pytest.raises(DataError, match="unsupported file type"):
        load_dataset(str(tmp_path / "a.parquet"))


def test_16bit_grey_png_scaled_not_clipped(tmp_path):
    a = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "deep.png")
    ds = load_dataset(str(tmp_path))
    assert ds.x.shape == (1, 1, 1, 3)
    assert torch.allclose(ds.x[0, 0, 0], torch.tensor([0.0, 100 / 255, 1.0]))


def test_column_names_must_fit_the_columns():
    with pytest.raises(DataError, match="3 column names for samples of shape \\(2,\\); give one name per column"):
        TensorDataset(torch.zeros(4, 2), columns=["a", "b", "c"])
    with pytest.raises(DataError, match="give one name per column of tabular data"):
        TensorDataset(torch.zeros(4, 1, 2, 2), columns=["a", "b", "c", "d"])


def test_standardising_a_huge_column_is_exact_or_one_line():
    """Statistics in float64: a 1e30 cell squared to inf in float32 and surfaced as a damaged model record
    ("norm.scale holds a non-finite value"); now the column standardises."""
    x = torch.ones(20, 3)
    x[:, 1] = torch.arange(20.0)
    x[3, 2] = 1e30
    z = TensorDataset(x).standardized()
    assert torch.isfinite(z.x).all() and torch.isfinite(z.norm.scale).all()
    y = torch.zeros(20, 2, dtype=torch.float64)
    y[0, 1], y[1, 1] = 3e38, -3e38  # mean 0, spread ~1e38 * sqrt(2/20): fine; the squares overflow float32 only
    assert torch.isfinite(TensorDataset(y.float()).standardized().norm.scale).all()

"""Hostile data files: empty, corrupt or lying arrays and IDX files, folders where files should be, and
label values that would blow up class tables. Each is a one-line DataError, found before allocating."""
import gzip
import io
import zipfile

import numpy as np
import pytest
import torch

from _genlab_data_files import idx_bytes, write_idx
from genlab.data import TensorDataset, load_dataset, read_idx
from genlab.data.dataset import MAX_SAMPLE_VALUES, Normalization, check_data_info
from genlab.errors import DataError, GenlabError


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg and msg.strip(), msg
    assert isinstance(exc_info.value, GenlabError)
    return msg


def load_err(path) -> str:
    with pytest.raises(DataError) as e:
        load_dataset(str(path))
    return one_line(e)


def npy_header(shape, descr="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


# ---------------------------------------------------------------------------- .npz / .npy
def test_npz_without_arrays(tmp_path):
    np.savez(tmp_path / "e.npz")
    msg = load_err(tmp_path / "e.npz")
    assert "holds no arrays" in msg and "numpy.savez" in msg
    np.savez(tmp_path / "ok.npz", x=np.random.rand(6, 3).astype(np.float32), y=np.array([0, 1, 2, 0, 1, 2]))
    ds = load_dataset(str(tmp_path / "ok.npz"))  # a plain npz still loads
    assert len(ds) == 6 and ds.num_classes == 3


def test_npz_with_zero_samples(tmp_path):
    np.savez(tmp_path / "z.npz", x=np.zeros((0, 5), np.float32))
    assert "0 samples" in load_err(tmp_path / "z.npz")


def test_corrupt_npz_never_suggests_unsafe_loading(tmp_path):
    for content in (b"not an array at all" * 20, b"PK\x03\x04" + b"\x00" * 60):
        (tmp_path / "c.npz").write_bytes(content)
        msg = load_err(tmp_path / "c.npz")
        assert "corrupt" in msg and "numpy.savez" in msg
        for bad in ("unsafe", "allow_pickle", "pickle.load", "trust"):
            assert bad not in msg


def test_object_array_message_has_no_unsafe_hint(tmp_path):
    np.savez(tmp_path / "o.npz", x=np.array([{"a": 1}, None], dtype=object))
    msg = load_err(tmp_path / "o.npz")
    assert "Python objects" in msg and "allow_pickle" not in msg and "unsafe" not in msg


def test_npy_header_declaring_more_than_the_file(tmp_path):
    (tmp_path / "h.npy").write_bytes(npy_header((100000, 100000)) + b"\x00" * 64)
    msg = load_err(tmp_path / "h.npy")
    assert "declares shape (100000, 100000)" in msg and "40,000,000,000 bytes" in msg


def test_npz_member_declaring_more_than_the_file(tmp_path):
    with zipfile.ZipFile(tmp_path / "h.npz", "w") as zf:
        zf.writestr("x.npy", npy_header((1000, 1000)) + b"\x00" * 64)
    assert "declares shape (1000, 1000)" in load_err(tmp_path / "h.npz")


def test_npz_member_that_is_not_an_array(tmp_path):
    with zipfile.ZipFile(tmp_path / "t.npz", "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert "not a .npy array" in load_err(tmp_path / "t.npz")


def test_folder_named_like_an_array_file(tmp_path):
    (tmp_path / "x.npz").mkdir()
    assert "is a folder, not a .npz file" in load_err(tmp_path / "x.npz")


# ---------------------------------------------------------------------------- labels
@pytest.mark.parametrize("y", [[0, 1, 10 ** 12], [0, 1, 5000], [3, 2000, 2000]])
def test_sparse_label_values_refused(tmp_path, y):
    np.savez(tmp_path / "l.npz", x=np.zeros((3, 2), np.float32), y=np.array(y))
    msg = load_err(tmp_path / "l.npz")
    assert "remap the labels to 0..K-1" in msg


@pytest.mark.parametrize("y", [[0, 1, -3], [0.0, 1.0, 1e30], np.array([0, 1, 2 ** 63 + 5], dtype=np.uint64)])
def test_negative_or_overflowing_labels_refused(tmp_path, y):
    np.savez(tmp_path / "l.npz", x=np.zeros((3, 2), np.float32), y=np.asarray(y))
    assert "remap the labels to 0..K-1" in load_err(tmp_path / "l.npz")


def test_csv_label_column_with_huge_value(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,label\n1,2,0\n3,4,1000000000000\n")
    assert "remap the labels" in load_err(tmp_path / "t.csv")


def test_label_bounds_on_tensor_dataset():
    x = torch.zeros(11, 2)
    ok = TensorDataset(x, torch.tensor(list(range(10)) + [999]))  # below 1000: always accepted
    assert ok.num_classes == 1000
    dense = TensorDataset(torch.zeros(2000, 2), torch.arange(2000))  # many distinct labels: fine
    assert dense.num_classes == 2000
    with pytest.raises(DataError) as e:
        TensorDataset(torch.zeros(2, 2), torch.tensor([0, 10 ** 12]))
    assert "remap the labels" in one_line(e)
    with pytest.raises(DataError) as e:
        TensorDataset(torch.zeros(2, 2), torch.tensor([0, -1]))
    assert "remap the labels to 0..K-1" in one_line(e)
    with pytest.raises(DataError) as e:  # class names given: labels must index them
        TensorDataset(torch.zeros(2, 2), torch.tensor([0, 5]), classes=["a", "b"])
    assert "only 2 classes" in one_line(e)


# ---------------------------------------------------------------------------- recorded data info
def info(**kw):
    d = {"name": "t", "kind": "image", "shape": [3, 256, 256], "num_classes": None, "classes": None,
         "norm": {"shift": 0.0, "scale": 255.0}}
    d.update(kw)
    return d


def test_data_info_bounds():
    check_data_info(info())  # 3x256x256 images
    check_data_info(info(kind="tabular", shape=[1_000_000], norm={"shift": 0.0, "scale": 1.0}))  # wide table
    check_data_info(info(shape=[3, 1024, 1024]))
    assert MAX_SAMPLE_VALUES == 2 ** 22
    with pytest.raises(DataError) as e:
        check_data_info(info(shape=[1, 100000, 100000]))
    assert "4,194,304" in one_line(e)
    with pytest.raises(DataError) as e:
        check_data_info(info(num_classes=2, classes=["a"]))
    assert "data.classes" in one_line(e)
    with pytest.raises(DataError) as e:
        check_data_info(info(shape=[True, 2, 2]))
    one_line(e)


def test_dataset_info_is_checked():
    with pytest.raises(DataError) as e:
        TensorDataset(torch.zeros(1, 5_000_000)).info()
    assert "smaller samples" in one_line(e)


@pytest.mark.parametrize("norm", [{"shift": "x", "scale": 1.0}, {"shift": 0.0}, "x", {"shift": 0.0, "scale": 0.0},
                                  {"shift": [0.0, float("nan")], "scale": 1.0}, {"shift": True, "scale": 1.0}])
def test_normalization_from_bad_dict(norm):
    with pytest.raises(DataError) as e:
        Normalization.from_dict(norm)
    one_line(e)


# ---------------------------------------------------------------------------- IDX and built-in folders
def test_idx_gzip_header_declaring_more_than_the_file(tmp_path):
    header = bytes([0, 0, 0x08, 3]) + np.array([60000, 100000, 100000], ">u4").tobytes()
    f = tmp_path / "x-idx3-ubyte.gz"
    f.write_bytes(gzip.compress(header + b"\x00" * 100))
    with pytest.raises(DataError) as e:
        read_idx(f)
    assert "cannot hold that much" in one_line(e)


def test_idx_gzip_bomb_stops_at_the_declared_size(tmp_path):
    f = tmp_path / "bomb-idx1-ubyte.gz"
    f.write_bytes(gzip.compress(idx_bytes(np.zeros(10, np.uint8)) + b"\x00" * (20 << 20), 9))
    with pytest.raises(DataError) as e:
        read_idx(f)
    assert "expands to more than" in one_line(e)


def test_idx_dims_overflowing_int64(tmp_path):
    header = bytes([0, 0, 0x0E, 4]) + np.array([2 ** 32 - 1] * 4, ">u4").tobytes()
    with pytest.raises(DataError) as e:
        read_idx(header + b"\x00" * 64)
    assert "truncated" in one_line(e)


def test_idx_file_that_is_a_folder(tmp_path):
    (tmp_path / "x-idx3-ubyte").mkdir()
    with pytest.raises(DataError) as e:
        read_idx(tmp_path / "x-idx3-ubyte")
    assert "is a folder, not a file" in one_line(e)


def test_builtin_file_that_is_a_folder(tmp_path, mnist_arrays):
    folder = tmp_path / "data" / "mnist"
    (folder / "train-images-idx3-ubyte.gz").mkdir(parents=True)
    write_idx(folder / "train-labels-idx1-ubyte.gz", mnist_arrays["train"][1])
    with pytest.raises(DataError) as e:
        load_dataset("mnist", data_dir=tmp_path / "data", download=False)
    assert "train-images-idx3-ubyte.gz is a folder" in one_line(e)


def test_builtin_folder_that_is_a_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mnist").write_text("oops")
    with pytest.raises(DataError) as e:
        load_dataset("mnist", data_dir=tmp_path / "data", download=False)
    assert "is a file, not the mnist folder" in one_line(e)

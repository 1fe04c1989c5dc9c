import io
import tarfile

import numpy as np
import pytest

from genlab.data import load_dataset, read_cifar_bin
from genlab.errors import DataError, MissingFilesError

from _genlab_data_files import cifar_bytes, make_cifar, write_cifar_tar

TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]


def test_read_cifar_bin_layout(tmp_path):
    x = np.zeros((2, 3, 32, 32), np.uint8)
    x[0, 0, 0, 0], x[0, 1, 0, 0], x[0, 2, 31, 31], x[1, 2, 5, 7] = 10, 20, 30, 40  # R plane, G plane, B plane
    p = tmp_path / "data_batch_1.bin"
    p.write_bytes(cifar_bytes(x, np.array([3, 9])))
    xx, yy = read_cifar_bin(p)
    assert xx.shape == (2, 3, 32, 32) and xx.dtype == np.uint8
    np.testing.assert_array_equal(xx, x)
    np.testing.assert_array_equal(yy, [3, 9])
    raw = p.read_bytes()
    assert raw[0] == 3 and raw[1] == 10 and raw[1 + 1024] == 20  # label byte, then R then G planes


def test_truncated_batch_names_file(tmp_path):
    p = tmp_path / "data_batch_2.bin"
    p.write_bytes(cifar_bytes(np.zeros((2, 3, 32, 32), np.uint8), np.array([0, 1]))[:-1])
    with pytest.raises(DataError, match=r"data_batch_2.bin: 6145 bytes .*3073"):
        read_cifar_bin(p)


def test_empty_batch(tmp_path):
    p = tmp_path / "test_batch.bin"
    p.write_bytes(b"")
    with pytest.raises(DataError, match="test_batch.bin"):
        read_cifar_bin(p)


def test_bad_label(tmp_path):
    p = tmp_path / "test_batch.bin"
    p.write_bytes(cifar_bytes(np.zeros((3, 3, 32, 32), np.uint8), np.array([0, 10, 2])))
    with pytest.raises(DataError, match="test_batch.bin: record 1 has label 10"):
        read_cifar_bin(p)


def _expected(batches, names):
    x = np.concatenate([batches[n][0] for n in names]).astype(np.float32) / 255
    y = np.concatenate([batches[n][1] for n in names])
    return x, y


@pytest.mark.parametrize("split,names", [("train", TRAIN), ("test", ["test_batch.bin"])])
def test_cifar10_from_tar_gz(tmp_path, split, names):
    batches = make_cifar(3)
    (tmp_path / "cifar10").mkdir()
    write_cifar_tar(tmp_path / "cifar10" / "cifar-10-binary.tar.gz", batches)
    ds = load_dataset("cifar10", data_dir=tmp_path, download=False, split=split)
    x, y = _expected(batches, names)
    assert ds.x.shape == (len(x), 3, 32, 32) and ds.classes[0] == "airplane" and ds.classes[9] == "truck"
    np.testing.assert_allclose(ds.x.numpy(), x)
    np.testing.assert_array_equal(ds.y.numpy(), y)
    assert float(ds.norm.scale) == 255.0


@pytest.mark.parametrize("sub", ["cifar-10-batches-bin", ""])
def test_cifar10_from_extracted_folder(tmp_path, sub):
    batches = make_cifar(2, seed=1)
    folder = tmp_path / "cifar10" / sub
    folder.mkdir(parents=True)
    for nm, (x, y) in batches.items():
        (folder / nm).write_bytes(cifar_bytes(x, y))
    ds = load_dataset("cifar10", data_dir=tmp_path, download=False)
    x, y = _expected(batches, TRAIN)
    np.testing.assert_allclose(ds.x.numpy(), x)
    np.testing.assert_array_equal(ds.y.numpy(), y)


def test_cifar10_corrupt_tar(tmp_path):
    folder = tmp_path / "cifar10"
    folder.mkdir()
    p = write_cifar_tar(folder / "cifar-10-binary.tar.gz", make_cifar(2))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cifar-10-binary.tar.gz"):
        load_dataset("cifar10", data_dir=tmp_path, download=False, split="test")


def test_cifar10_tar_missing_member(tmp_path):
    folder = tmp_path / "cifar10"
    folder.mkdir()
    batches = make_cifar(2)
    del batches["data_batch_4.bin"]
    write_cifar_tar(folder / "cifar-10-binary.tar.gz", batches)
    with pytest.raises(DataError, match="lacks data_batch_4.bin"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)


def test_cifar10_truncated_member_in_tar(tmp_path):
    folder = tmp_path / "cifar10"
    folder.mkdir()
    batches = make_cifar(2)
    x, y = batches["test_batch.bin"]
    with tarfile.open(folder / "cifar-10-binary.tar.gz", "w:gz") as tar:
        data = cifar_bytes(x, y)[:-100]
        info = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match="test_batch.bin.*3073"):
        load_dataset("cifar10", data_dir=tmp_path, download=False, split="test")


def test_cifar10_missing_offline(tmp_path):
    with pytest.raises(MissingFilesError) as e:
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert "cifar-10-binary.tar.gz" in msg and str(tmp_path / "cifar10") in msg
    assert "https://www.cs.toronto.edu/~kriz/" in msg and "download disabled" in msg

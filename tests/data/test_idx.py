import gzip

import numpy as np
import pytest

from genlab.data import read_idx
from genlab.data.idx import read_idx_pair
from genlab.errors import DataError

from _genlab_data_files import idx_bytes, write_idx


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_roundtrip_uint8(tmp_path, gz):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = write_idx(tmp_path / ("a.idx3.gz" if gz else "a.idx3"), arr, gz=gz)
    out = read_idx(p)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float32, np.float64, np.int8])
def test_read_idx_big_endian_dtypes(dtype):
    arr = (np.arange(6) - 3).astype(dtype).reshape(3, 2) * 300 if dtype not in (np.int8,) else \
        (np.arange(6) - 3).astype(dtype).reshape(3, 2)
    out = read_idx(idx_bytes(arr))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_read_idx_from_gzip_bytes():
    arr = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(gzip.compress(idx_bytes(arr))), arr)


def test_bad_magic_names_file(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(b"\x01\x02\x08\x03" + b"\x00" * 20)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*magic.*download it again"):
        read_idx(p)


def test_unknown_type_code(tmp_path):
    p = tmp_path / "x.idx"
    p.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x00")
    with pytest.raises(DataError, match="x.idx"):
        read_idx(p)


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_payload(tmp_path, gz):
    raw = idx_bytes(np.zeros((4, 5, 5), np.uint8))[:-7]
    p = tmp_path / ("short.gz" if gz else "short")
    p.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(DataError, match=r"short.*truncated"):
        read_idx(p)


def test_too_long_payload(tmp_path):
    p = tmp_path / "long"
    p.write_bytes(idx_bytes(np.zeros((2, 2), np.uint8)) + b"\x00")
    with pytest.raises(DataError, match="long.*too long"):
        read_idx(p)


def test_truncated_header(tmp_path):
    p = tmp_path / "hdr"
    p.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x02")
    with pytest.raises(DataError, match="hdr.*truncated IDX header"):
        read_idx(p)


def test_truncated_gzip_stream(tmp_path):
    data = gzip.compress(idx_bytes(np.arange(4000, dtype=np.uint8).reshape(40, 100) % 7))
    p = tmp_path / "cut.gz"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.gz.*gzip"):
        read_idx(p)


def test_non_gzip_bytes_with_gz_name(tmp_path):
    p = tmp_path / "train-labels-idx1-ubyte.gz"
    p.write_bytes(b"<html>Not Found</html>")
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz.*not gzip"):
        read_idx(p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty"
    p.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        read_idx(p)


def test_pair_wrong_label_count(tmp_path):
    xi = write_idx(tmp_path / "imgs.gz", np.zeros((4, 28, 28), np.uint8))
    yi = write_idx(tmp_path / "labs.gz", np.zeros(3, np.uint8))
    with pytest.raises(DataError, match="labs.gz: 3 labels for 4 images"):
        read_idx_pair(xi, yi)


def test_pair_swapped_files(tmp_path):
    xi = write_idx(tmp_path / "imgs.gz", np.zeros((4, 28, 28), np.uint8))
    yi = write_idx(tmp_path / "labs.gz", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="labs.gz"):
        read_idx_pair(yi, xi)
    x, y = read_idx_pair(xi, yi)
    assert x.shape == (4, 28, 28) and y.dtype == np.int64

import hashlib
import io

import pytest

from genlab.data.download import Remote, data_root, download_file, ensure_files, sha256_file
from genlab.errors import DataError, MissingFilesError


def _src(tmp_path, data=b"genlab" * 1000):
    p = tmp_path / "src" / "blob.bin"
    p.parent.mkdir()
    p.write_bytes(data)
    return p, hashlib.sha256(data).hexdigest()


def test_download_file_url_ok(tmp_path):
    src, h = _src(tmp_path)
    dest = tmp_path / "out" / "sub" / "blob.bin"
    assert download_file(src.as_uri(), dest, h) == dest
    assert dest.read_bytes() == src.read_bytes()
    assert sha256_file(dest) == h
    assert sorted(p.name for p in dest.parent.iterdir()) == ["blob.bin"]  # no temp file left


def test_download_checksum_mismatch_leaves_nothing(tmp_path):
    src, h = _src(tmp_path)
    dest = tmp_path / "out" / "blob.bin"
    with pytest.raises(DataError, match=r"blob\.bin: downloaded from .* has SHA-256 .* expected 0{64}"):
        download_file(src.as_uri(), dest, "0" * 64)
    assert list(dest.parent.iterdir()) == []


def test_download_mismatch_keeps_existing_file(tmp_path):
    src, _ = _src(tmp_path)
    dest = tmp_path / "blob.bin"
    dest.write_bytes(b"old")
    with pytest.raises(DataError):
        download_file(src.as_uri(), dest, "f" * 64)
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_download_interrupted_stream_leaves_nothing(tmp_path):
    class Broken(io.BytesIO):
        def read(self, n=-1):
            if self.tell() > 0:
                raise ConnectionResetError("peer reset")
            return super().read(10)

    dest = tmp_path / "blob.bin"
    with pytest.raises(ConnectionResetError):
        download_file("http://example.invalid/x", dest, None, opener=lambda url, timeout: Broken(b"x" * 100))
    assert list(tmp_path.iterdir()) == []


def test_download_missing_source(tmp_path):
    with pytest.raises(OSError):
        download_file((tmp_path / "absent").as_uri(), tmp_path / "d" / "x", None)
    assert list((tmp_path / "d").iterdir()) == []


def test_ensure_files_downloads_and_skips_present(tmp_path):
    src, h = _src(tmp_path)
    calls = []

    def counting(url, dest, sha):
        calls.append(url)
        return download_file(url, dest, sha)

    folder = tmp_path / "ds"
    r = Remote("blob.bin", src.as_uri(), h)
    ensure_files("toy", folder, [r], download=None, downloader=counting)
    ensure_files("toy", folder, [r], download=True, downloader=counting)
    assert calls == [src.as_uri()] and (folder / "blob.bin").is_file()


def test_ensure_files_download_false_never_calls(tmp_path):
    def boom(*a, **k):
        raise AssertionError("must not download")

    with pytest.raises(MissingFilesError, match=r"toy: missing a\.gz, b\.gz in .*\(download disabled\).*http://h/p/"):
        ensure_files("toy", tmp_path, [Remote("a.gz", "http://h/p/a.gz", "0"), Remote("b.gz", "http://h/p/b.gz", "0")],
                     download=False, downloader=boom)


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("GENLAB_DATA")
    assert str(data_root()).endswith(".cache/genlab/data")

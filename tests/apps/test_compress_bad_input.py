"""Compressor bad input: a .glc header whose sample count N disagrees with the payload (ANS and fixed coder),
decompress given a path, lmbda / rd_epochs bounds, a NaN reference for ``genlab decompress``, and the CLI's
``--bits`` checks made before training. Each is a one-line ConfigError/DataError (CLI: exit 2) and nothing is
written."""
import copy
import struct
import zlib

import numpy as np
import pytest

import genlab.apps.compress as compress_mod
from genlab.apps import Compressor
from genlab.apps.compress import ans_decode, ans_encode, parse_header
from genlab.cli import main
from genlab.errors import ConfigError, DataError

FAST = {"precision": "fp32", "channels_last": False}


def _rows(n=60, d=8, seed=0):
    g = np.random.default_rng(seed)
    base = g.normal(size=(4, d))
    return (base[np.arange(n) % 4] + 0.3 * g.normal(size=(n, d))).astype(np.float32)


def _fit(coder, **kw):
    cfg = {"latent_dim": 4, "arch": "mlp", "hidden": [16]}
    return Compressor(model_config=cfg, epochs=1, rd_epochs=1, batch_size=16, trainer_config=FAST, coder=coder,
                      validation_fraction=0.0, **kw).fit(_rows())


@pytest.fixture(scope="module")
def ans():
    return _fit("ans")


@pytest.fixture(scope="module")
def fixed():
    return _fit("fixed", bits=3)


def _with_n(data: bytes, n: int) -> bytes:
    """``data`` with the header's sample count set to ``n`` and the CRC-32 recomputed (a consistent file)."""
    h = parse_header(data)
    head = bytearray(data[:h.size])
    struct.pack_into("<Q", head, 8, n)
    payload = data[h.size:]
    crc = zlib.crc32(payload, zlib.crc32(bytes(head[:h.size - 4])))
    struct.pack_into("<I", head, h.size - 4, crc)
    return bytes(head) + payload


# ---------------------------------------------------------------------------- 1. header N vs payload
@pytest.mark.parametrize("n", [1, 59, 10 ** 11])  # too few (words left over), more than the payload can hold
def test_ans_wrong_sample_count_is_corrupt(ans, n):
    data = ans.compress(_rows())
    assert len(ans.decompress(data)) == 60
    with pytest.raises(DataError, match="corrupt") as e:
        ans.decompress(_with_n(data, n))
    assert len(str(e.value).splitlines()) == 1


def test_ans_sample_count_bounded_before_decoding(ans, monkeypatch):
    data = ans.compress(_rows())
    h = parse_header(data)
    cap = compress_mod.ans_max_rows(h.payload_size, h.latent_dim, ans.code_pmf_.shape[1])
    assert cap is not None and cap >= 60

    def no_decoding(*a, **k):
        raise AssertionError("decoded before the bound was checked")
    monkeypatch.setattr(np, "tile", no_decoding)
    with pytest.raises(DataError, match="holds at most"):
        ans.decompress(_with_n(data, cap + 1))


def test_ans_decode_exact_roundtrip_and_trailing_free_rows():
    rng = np.random.default_rng(1)
    pmf = rng.dirichlet(np.ones(5), size=3)
    code_min = np.array([-2, 0, 3])
    q = code_min + rng.integers(1, 5, size=(40, 3))  # no row of symbol 0 only
    words = ans_encode(q, code_min, pmf)
    np.testing.assert_array_equal(ans_decode(words, 40, code_min, pmf), q)
    for n in (1, 39):
        with pytest.raises(DataError, match="corrupt sample count"):
            ans_decode(words, n, code_min, pmf)
    # genuine files whose last rows code every dimension at its lowest value decode exactly: constriction stores
    # such trailing rows in no words at all, so a larger N cannot be refused without refusing these
    for n in (1, 3, 40):
        z = q[:n].copy()
        z[-1] = code_min
        np.testing.assert_array_equal(ans_decode(ans_encode(z, code_min, pmf), n, code_min, pmf), z)


def test_fixed_wrong_sample_count_is_corrupt(fixed):
    data = fixed.compress(_rows())  # 60 x 4 codes x 3 bits = 90 bytes exactly
    for n in (1, 59, 61, 10 ** 6):
        with pytest.raises(DataError, match="corrupt"):
            fixed.decompress(_with_n(data, n))
    # 1 bit x 4 codes: 1 and 2 rows both fit in 1 byte; N=1 leaves row 2's codes in the padding
    one = copy.deepcopy(fixed).set_params(bits=1)
    i = int(np.flatnonzero(one.transform(_rows()).any(axis=1))[0])
    two = one.compress(_rows()[[0, i]])
    assert parse_header(two).payload_size == 1
    with pytest.raises(DataError, match="non-zero padding"):
        one.decompress(_with_n(two, 1))


# ---------------------------------------------------------------------------- 2. decompress(path)
def test_decompress_accepts_a_path(ans, tmp_path):
    p = tmp_path / "a.glc"
    ans.write(p, _rows())
    want = ans.decompress(p.read_bytes())
    np.testing.assert_array_equal(ans.decompress(str(p)), want)
    np.testing.assert_array_equal(ans.decompress(p), want)
    with pytest.raises(DataError, match="cannot read"):
        ans.decompress(str(tmp_path / "missing.glc"))
    with pytest.raises(ConfigError, match="decompress takes the .glc bytes"):
        ans.decompress(12)


# ---------------------------------------------------------------------------- 3. lmbda / rd_epochs / bits bounds
@pytest.mark.parametrize("kw,msg", [({"lmbda": 1e300}, "lmbda must be a positive number <="),
                                    ({"lmbda": 2e6}, "lmbda must be a positive number <="),
                                    ({"rd_epochs": 10 ** 11}, "rd_epochs must be an integer >= 1 and <="),
                                    ({"bits": -1}, "bits must be an integer in 1..16"),  # the ANS coder's too
                                    ({"bits": float("nan")}, "bits must be an integer in 1..16")])
def test_lmbda_and_rd_epochs_bounded_before_training(kw, msg, monkeypatch):
    monkeypatch.setattr(Compressor, "_fit_model", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ConfigError, match=msg):
        Compressor(epochs=1, **kw).fit(_rows())


# ---------------------------------------------------------------------------- 4. NaN reference
def test_cli_nan_reference_refused(ans, tmp_path, capsys):
    ans.save(tmp_path / "est")
    ans.write(tmp_path / "a.glc", _rows())
    bad = _rows()
    bad[3, 2] = np.nan
    np.savez(tmp_path / "ref.npz", x=bad)
    argv = ["decompress", str(tmp_path / "a.glc"), "-o", str(tmp_path / "y.npz"), "--run", str(tmp_path / "est"),
            "--reference", str(tmp_path / "ref.npz")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "NaN or inf" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "y.npz").exists()


# ---------------------------------------------------------------------------- 5. --bits before training
@pytest.mark.parametrize("extra,msg", [(["--bits", "0"], "bits must be an integer in 1..16"),
                                       (["--bits", "17"], "bits must be an integer in 1..16"),
                                       (["--coder", "ans", "--bits", "8"], "--bits sets the fixed coder's precision")])
def test_cli_bits_refused_before_training(extra, msg, tmp_path, capsys, monkeypatch):
    np.savez(tmp_path / "tab.npz", x=_rows())
    monkeypatch.setattr(compress_mod.Compressor, "fit", lambda *a, **k: pytest.fail("trained"))
    argv = ["compress", str(tmp_path / "tab.npz"), "-o", str(tmp_path / "b.glc"), "--epochs", "1", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "b.glc").exists() and not (tmp_path / "b.compressor").exists()

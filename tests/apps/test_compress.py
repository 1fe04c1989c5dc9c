"""Compressor: quantiser and bit packing against closed forms, the ANS coder against the information content,
the .glc format, decoding equals the model's decoder on the (de)quantised codes, errors, sklearn rules, and the
compress/decompress CLI. Most tests use the fixed-length coder (exact closed forms); the ANS tests are marked."""
import itertools
import json
import math
import struct

import numpy as np
import pytest
import torch
from sklearn.base import clone

from genlab.apps import Compressor
from genlab.apps.compress import (
    HASH_BYTES,
    MAGIC,
    FactorizedDensity,
    ans_decode,
    ans_encode,
    information_content,
    probability_tables,
    decode_file,
    dequantize,
    encode_file,
    header_size,
    pack_codes,
    parse_header,
    quant_step,
    quantize,
    rate_distortion,
    unpack_codes,
)
from genlab.cli import main
from genlab.errors import CheckpointError, ConfigError, DataError
from tests.conftest import run_cli

FAST = {"precision": "fp32", "channels_last": False}


def _images(seed=0, n=64):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(4, 1, 8, 8, generator=g)
    y = torch.arange(n) % 4
    return (base[y] * 0.8 + 0.2 * torch.rand(n, 1, 8, 8, generator=g)).clamp(0, 1).numpy()


def _fit(X, seed=0, latent=4, epochs=20, arch="mlp", coder="fixed", **kw):
    # the fixture's model is a conv AE (as in the bench); the other fits use a small MLP (fast on a busy CPU)
    cfg = {"latent_dim": latent, "arch": arch} | ({"hidden": [32]} if arch == "mlp" else {})
    return Compressor(model_config=cfg, epochs=epochs, batch_size=16, random_state=seed, trainer_config=FAST,
                      coder=coder, **kw).fit(X)


@pytest.fixture(scope="module")
def X():
    return _images()


@pytest.fixture(scope="module")
def comp(X):
    return _fit(X, arch="conv")


# ---------------------------------------------------------------------------- quantiser and packing
@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8, 11, 16])
def test_quantiser_error_at_most_half_step(bits):
    rng = np.random.default_rng(bits)
    lo = rng.normal(size=6) * 3
    hi = lo + rng.uniform(0.1, 5, size=6)
    z = lo + (hi - lo) * rng.uniform(size=(500, 6))
    z[0], z[1] = lo, hi  # the range ends are levels themselves
    q = quantize(z, lo, hi, bits)
    step = (hi - lo) / (2 ** bits - 1)  # closed form
    assert q.dtype == np.uint32 and q.min() >= 0 and q.max() <= 2 ** bits - 1
    err = np.abs(z - dequantize(q, lo, hi, bits))
    assert (err <= step / 2 * (1 + 1e-9) + 1e-12).all()
    np.testing.assert_allclose(dequantize(q[:2], lo, hi, bits), z[:2], rtol=0, atol=1e-12)
    assert (q[0] == 0).all() and (q[1] == 2 ** bits - 1).all()
    # out of range: clipped to the ends
    out = quantize(np.stack([lo - 10, hi + 10]), lo, hi, bits)
    assert (out[0] == 0).all() and (out[1] == 2 ** bits - 1).all()


def test_quantiser_constant_dimension_decodes_exactly():
    lo = hi = np.array([0.25, -3.0])
    assert (quant_step(lo, hi, 8) == 1.0).all()
    z = np.array([[0.25, -3.0], [0.25, -3.0]])
    q = quantize(z, lo, hi, 8)
    assert (q == 0).all() and (dequantize(q, lo, hi, 8) == z).all()


@pytest.mark.parametrize("bits", range(1, 17))
def test_bit_packing_round_trip(bits):
    rng = np.random.default_rng(bits)
    for count in (0, 1, 7, 1001):
        q = rng.integers(0, 2 ** bits, size=count).astype(np.uint32)
        if count > 2:
            q[0], q[1] = 0, 2 ** bits - 1
        buf = pack_codes(q, bits)
        assert len(buf) == math.ceil(count * bits / 8)
        np.testing.assert_array_equal(unpack_codes(buf, bits, count), q)


def test_bit_packing_layout_is_msb_first():
    assert pack_codes(np.array([5, 1]), 3) == bytes([0b10100100])  # 101 001 + two zero pad bits
    q8 = np.array([0, 7, 255, 128])
    assert pack_codes(q8, 8) == q8.astype(np.uint8).tobytes()
    q16 = np.array([0, 1, 65535, 4660])
    assert pack_codes(q16, 16) == q16.astype(">u2").tobytes()
    with pytest.raises(DataError, match="does not fit in 4 bits"):
        pack_codes(np.array([16]), 4)


def test_header_layout_and_parsing():
    assert header_size(3) == 4 + 1 + 1 + 1 + 1 + 8 + 4 + 4 + 3 * 4 + 16 + 4 == 56
    assert header_size(1) == 48
    q = np.arange(30, dtype=np.uint32).reshape(10, 3) % 32
    h16 = bytes(range(16))
    data = encode_file(q, bits=5, sample_shape=(1, 8, 8), model_hash=h16)
    assert data[:4] == MAGIC and data[4] == 2 and data[5] == 0 and data[6] == 5 and data[7] == 3
    assert struct.unpack_from("<QII", data, 8) == (10, 3, math.ceil(10 * 3 * 5 / 8))
    h = parse_header(data)
    assert (h.version, h.coder, h.bits, h.sample_shape, h.n, h.latent_dim, h.model_hash) == \
        (2, "fixed", 5, (1, 8, 8), 10, 3, h16)
    assert len(data) == 56 + math.ceil(10 * 3 * 5 / 8)
    h2, q2 = decode_file(data)
    assert h2 == h and (q2 == q).all()
    ht = parse_header(encode_file(q, bits=16, sample_shape=(7,), model_hash=h16))
    assert ht.sample_shape == (7,) and ht.size == 48 and ht.payload_size == 60


# ---------------------------------------------------------------------------- the estimator
@pytest.mark.parametrize("bits", [3, 8, 13])
def test_file_size_is_header_plus_packed_codes(comp, X, bits):
    comp.set_params(bits=bits)
    try:
        data = comp.compress(X)
    finally:
        comp.set_params(bits=8)
    assert len(data) == 56 + math.ceil(len(X) * 4 * bits / 8)
    assert parse_header(data).bits == bits


def test_decode_equals_model_decoder_on_dequantised_codes(comp, X):
    m = comp.model_
    with torch.no_grad():
        z = m.encode(torch.from_numpy(X)).double().numpy()
    lo, hi = z.min(0), z.max(0)  # min/max of the training codes (fit saw the same X)
    np.testing.assert_allclose(comp.code_min_, lo, rtol=0, atol=1e-12)
    np.testing.assert_allclose(comp.code_max_, hi, rtol=0, atol=1e-12)
    bits = 8
    step = (hi - lo) / (2 ** bits - 1)
    q = np.clip(np.round((z - lo) / step), 0, 255)
    zhat = torch.from_numpy((lo + q * step).astype(np.float32))
    with torch.no_grad():
        want = m.decode(zhat).clamp(0, 1).numpy()
    data = comp.compress(X)
    _, q_file = decode_file(data)
    np.testing.assert_array_equal(q_file, q.astype(np.uint32))
    np.testing.assert_array_equal(comp.transform(X), q_file)
    got = comp.decompress(data)
    assert got.shape == X.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(comp.inverse_transform(q_file), want, rtol=0, atol=1e-6)


def test_more_bits_psnr_rises_to_unquantised(comp, X):
    # PSNR is not a monotone function of bits in general (the 2^b - 1 level grids are not nested), so the
    # step-by-step check allows 0.05 dB; the latent error bound step/2 does halve with every bit.
    rows = comp.rate_distortion(X, bits=(1, 2, 4, 8, 16))
    ps = [r["psnr"] for r in rows]
    assert all(b >= a - 0.05 for a, b in itertools.pairwise(ps)), ps
    assert ps[-1] > ps[0] + 0.5, ps
    assert abs(ps[-1] - rows[-1]["psnr_unquantised"]) < 1e-3
    assert [r["bytes_per_sample"] for r in rows] == [(56 + math.ceil(64 * 4 * b / 8)) / 64 for b in (1, 2, 4, 8, 16)]
    r8 = rows[3]
    assert r8["raw_bytes_per_sample"] == 64 and r8["compression_ratio"] == pytest.approx(64 / r8["bytes_per_sample"])
    assert comp.score(X) == pytest.approx(r8["psnr"])


def test_vae_codes_are_posterior_means(X):
    c = Compressor(model="vae", model_config={"latent_dim": 3}, epochs=2, batch_size=16, coder="fixed",
                   trainer_config=FAST).fit(X)
    with torch.no_grad():
        mu = c.model_.posterior(torch.from_numpy(X))[0].double().numpy()
    np.testing.assert_array_equal(c.transform(X), quantize(mu, mu.min(0), mu.max(0), 8))


def test_clip_percentile_ranges(X):
    c = _fit(X, epochs=2, clip_percentile=10.0)
    with torch.no_grad():
        z = c.model_.encode(torch.from_numpy(X)).double().numpy()
    np.testing.assert_allclose(c.code_min_, np.percentile(z, 10, axis=0))
    np.testing.assert_allclose(c.code_max_, np.percentile(z, 90, axis=0))


def test_tabular_round_trip(tabular_data):
    Xt = tabular_data.x.numpy()
    c = Compressor(model_config={"latent_dim": 2}, bits=10, epochs=3, batch_size=16, trainer_config=FAST,
                   coder="fixed").fit(Xt)
    data = c.compress(Xt)
    assert len(data) == 48 + math.ceil(80 * 2 * 10 / 8)
    got = c.decompress(data)
    assert got.shape == (80, 5)
    # raw units: the model's decoder on the dequantised codes, mapped back by its standardisation
    from genlab.data import Normalization
    norm = Normalization.from_dict(c.model_.data_info["norm"])
    with torch.no_grad():
        z = c.model_.encode(norm.from_raw(torch.from_numpy(Xt))).double().numpy()
        zhat = dequantize(quantize(z, c.code_min_, c.code_max_, 10), c.code_min_, c.code_max_, 10)
        want = norm.to_raw(c.model_.decode(torch.from_numpy(zhat.astype(np.float32)))).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    r = c.evaluate(Xt)
    assert "psnr" not in r and r["raw_format"] == "float32" and r["raw_bytes_per_sample"] == 20
    assert c.score(Xt) == pytest.approx(-r["mse"])


def test_rate_distortion_across_code_sizes(X):
    rows = rate_distortion(X[:48], X[48:], latent_dims=(2, 3), bits=(4, 8), epochs=1, batch_size=16,
                           trainer_config=FAST, coder="fixed")
    assert [(r["latent_dim"], r["bits"]) for r in rows] == [(2, 4), (2, 8), (3, 4), (3, 8)]
    assert all(r["n"] == 16 and r["file_bytes"] == 56 + math.ceil(16 * r["latent_dim"] * r["bits"] / 8)
               for r in rows)


# ---------------------------------------------------------------------------- ANS coder and learned prior
def _random_tables(rng, L=5, K=9):
    widths = rng.integers(2, K + 1, size=L)
    pmf = np.zeros((L, K))
    for j, w in enumerate(widths):
        pmf[j, :w] = rng.dirichlet(np.full(w, 0.7))
    return rng.integers(-6, 3, size=L), pmf


def test_ans_is_lossless_and_within_a_few_bytes_of_the_information_content():
    rng = np.random.default_rng(0)
    code_min, pmf = _random_tables(rng)
    for n in (1, 7, 2000):
        s = np.stack([rng.choice(K, size=n, p=pmf[j] / pmf[j].sum()) for j, K in enumerate([pmf.shape[1]] * 5)], 1)
        q = s + code_min[None, :]
        data = ans_encode(q, code_min, pmf)
        np.testing.assert_array_equal(ans_decode(data, n, code_min, pmf), q)
        # independent reference for the ideal length: the sum of -log2 p over the symbols, by a plain loop
        ideal = sum(-math.log2(pmf[j, s[i, j]]) for i in range(n) for j in range(5))
        assert information_content(q, code_min, pmf) == pytest.approx(ideal, rel=1e-12)
        # 32-bit words: at most one word of rounding plus one of ANS state above the ideal; probabilities are
        # quantised to 24 bits, which costs well under 0.1 %
        assert ideal / 8 * 0.999 - 1 <= len(data) <= ideal / 8 * 1.001 + 8, (n, len(data), ideal / 8)
    with pytest.raises(DataError, match="outside the prior's support"):
        ans_encode(np.array([[100, 0, 0, 0, 0]]), code_min, pmf)


def test_factorized_density_is_a_density_and_tables_sum_to_one():
    torch.manual_seed(0)
    d = FactorizedDensity(3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # random but non-trivial weights
        for p in d.parameters():
            p.add_(0.3 * torch.randn_like(p))
        grid = torch.arange(-200, 201, dtype=torch.float32)[:, None].repeat(1, 3)  # (K, 3)
        mass = d.bin_probability(grid).double()
        fine = torch.linspace(-30, 30, 2001)[None, :].repeat(3, 1)
        cdf = torch.sigmoid(d.logits_cdf(fine))
    # the unit bins tile the line: their masses sum to 1 (up to the 1e-9 floor on the far tails)
    np.testing.assert_allclose(mass.sum(0).numpy(), 1.0, atol=1e-4)
    assert (cdf.diff(dim=1) >= -1e-6).all()  # monotone cumulative
    q_train = np.array([[0, -3, 5], [2, 1, 5], [1, 0, 7]])
    lo, pmf = probability_tables(d, q_train)
    np.testing.assert_array_equal(lo, [-2, -5, 3])
    assert pmf.shape == (3, 9) and np.allclose(pmf.sum(1), 1.0)
    assert ((pmf > 0).sum(1) == [7, 9, 7]).all()
    want = mass.numpy()[200 - 2:200 + 5, 0]
    np.testing.assert_allclose(pmf[0, :7], want / want.sum(), rtol=1e-5)


@pytest.fixture(scope="module")
def ans(X):
    return _fit(X, epochs=3, coder="ans", rd_epochs=3, lmbda=50.0)


def test_ans_compressor_round_trip_and_size(ans, X):
    q = ans.transform(X)
    assert q.dtype == np.int64 and (q >= ans.code_min_).all() and (q <= ans.code_max_).all()
    data = ans.compress(X)
    h = parse_header(data)
    assert (h.coder, h.bits, h.n, h.latent_dim, h.size) == ("ans", 0, 64, 4, 56) and len(data) == 56 + h.payload_size
    # lossless w.r.t. the quantised latents
    _, q_file = decode_file(data, code_min=ans.code_min_.astype(np.int64), pmf=ans.code_pmf_)
    np.testing.assert_array_equal(q_file, q)
    with torch.no_grad():
        want = ans.model_.decode(torch.from_numpy(q.astype(np.float32))).clamp(0, 1).numpy()
    np.testing.assert_allclose(ans.decompress(data), want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ans.inverse_transform(q), want, rtol=0, atol=1e-6)
    r = ans.evaluate(X)
    assert r["coder"] == "ans" and r["bits"] is None and r["file_bytes"] == len(data)
    assert r["ideal_payload_bytes"] == pytest.approx(information_content(q, ans.code_min_.astype(int), ans.code_pmf_) / 8)
    assert r["ideal_payload_bytes"] - 1 <= r["payload_bytes"] <= r["ideal_payload_bytes"] * 1.001 + 8
    assert r["decoder_bytes"] == 4 * (sum(t.numel() for t in ans.model_.decoder.state_dict().values())
                                      + int((ans.code_pmf_ > 0).sum()) + 4)
    with pytest.raises(ConfigError, match="needs the probability tables"):
        decode_file(data)


def test_ans_rate_falls_with_lmbda(X):
    small = _fit(X, epochs=2, coder="ans", rd_epochs=6, lmbda=0.05)
    big = _fit(X, epochs=2, coder="ans", rd_epochs=6, lmbda=2000.0)
    rs, rb = small.evaluate(X), big.evaluate(X)
    assert rs["payload_bytes"] < rb["payload_bytes"] and rs["mse"] > rb["mse"], (rs, rb)


def test_ans_files_refused_by_other_estimators_and_when_damaged(ans, comp, X, tmp_path):
    data = ans.compress(X)
    with pytest.raises(CheckpointError, match="coder ans vs fixed") as e:
        comp.decompress(data, name="a.glc")
    _one_line(e)
    with pytest.raises(CheckpointError, match="model hash"):
        ans.decompress(comp.compress(X))
    for bad, msg in [(data[:-1], "truncated"), (data[:-4], "truncated"), (data + b"\0", "unexpected bytes"),
                     (data[:-1] + bytes([data[-1] ^ 1]), "CRC-32")]:
        with pytest.raises(DataError, match=msg) as e:
            ans.decompress(bad)
        _one_line(e)
    ans.save(tmp_path / "est")
    loaded = Compressor.load(tmp_path / "est")
    np.testing.assert_array_equal(loaded.code_pmf_, ans.code_pmf_)
    assert loaded.compress(X) == data
    np.testing.assert_array_equal(loaded.decompress(data), ans.decompress(data))


# ---------------------------------------------------------------------------- errors
def _one_line(e):
    assert "\n" not in str(e.value)
    return str(e.value)


def test_other_model_or_quantiser_is_a_checkpoint_error(comp, X):
    data = comp.compress(X)
    other = _fit(X, seed=1, epochs=2)
    with pytest.raises(CheckpointError, match="different model or quantiser") as e:
        other.decompress(data, name="x.glc")
    assert "x.glc" in _one_line(e) and "--run" in str(e.value)
    # same weights, other ranges: the hash covers the quantiser too
    shifted = clone(comp)
    shifted.__dict__.update({k: v for k, v in comp.__dict__.items() if k.endswith("_")})
    shifted.code_max_ = comp.code_max_ + 1.0
    from genlab.apps.compress import model_hash
    shifted.model_hash_ = model_hash(comp.model_, shifted.code_min_, shifted.code_max_).hex()
    with pytest.raises(CheckpointError, match="model hash"):
        shifted.decompress(data)
    wide = _fit(X, latent=6, epochs=1)
    with pytest.raises(CheckpointError, match="latent dim 4 vs 6"):
        wide.decompress(data)


def test_truncated_and_corrupt_files(comp, X):
    data = comp.compress(X)
    for bad, msg in [(data[:-1], "truncated"), (data[:30], "truncated"), (data[:3], "truncated"),
                     (b"PK\x03\x04" + data[4:], "not a genlab compressed file"),
                     (data[:4] + b"\x09" + data[5:], "format version 9"),
                     (data + b"\x00", "unexpected bytes"),
                     (data[:60] + bytes([data[60] ^ 1]) + data[61:], "CRC-32"),
                     (data[:5] + b"\x07" + data[6:], "corrupt header"),
                     (data[:40] + bytes([data[40] ^ 0xFF]) + data[41:], "CRC-32")]:
        with pytest.raises(DataError, match=msg) as e:
            comp.decompress(bad)
        _one_line(e)


def test_bad_parameters_and_input(comp, X, tmp_path):
    for bits in (0, 17, 2.5, True):
        with pytest.raises(ConfigError, match="bits must be an integer in 1..16"):
            Compressor(bits=bits, coder="fixed").fit(X)
    with pytest.raises(ConfigError, match="coder must be one of ans, fixed"):
        Compressor(coder="zip").fit(X)
    for lm in (0, -1.0, float("nan"), "big"):
        with pytest.raises(ConfigError, match="lmbda must be a positive number"):
            Compressor(lmbda=lm).fit(X)
    with pytest.raises(ConfigError, match="rd_epochs must be an integer >= 1"):
        Compressor(rd_epochs=0).fit(X)
    with pytest.raises(ConfigError, match="clip_percentile"):
        Compressor(clip_percentile=50).fit(X)
    with pytest.raises(ConfigError, match="Compressor does not support conditional models such as 'cvae'; use one "
                                          "of: ae, contractive-ae, denoising-ae, distance-ae, sparse-ae, vae"):
        Compressor(model="cvae").fit(X)
    with pytest.raises(ConfigError, match="model 'cgan' lacks the capability 'has_encoder' .* that Compressor needs"):
        Compressor(model="cgan").fit(X)
    with pytest.raises(ConfigError, match="not fitted"):
        Compressor().compress(X)
    with pytest.raises(DataError, match="fitted on"):
        comp.compress(np.zeros((3, 1, 4, 4), np.float32))
    with pytest.raises(DataError, match="NaN"):
        comp.compress(np.full((3, 5), np.nan))
    with pytest.raises(DataError, match="cannot read"):
        comp.read(tmp_path / "missing.glc")
    with pytest.raises(DataError, match=r"codes must have shape \(N, 4\)"):
        comp.inverse_transform(np.zeros((2, 3)))


# ---------------------------------------------------------------------------- sklearn rules, persistence
def test_clone_save_load_and_files(comp, X, tmp_path):
    c2 = clone(comp)
    assert c2.get_params() == comp.get_params() and not hasattr(c2, "model_")
    comp.write(tmp_path / "a.glc", X)
    comp.save(tmp_path / "est")
    loaded = Compressor.load(tmp_path / "est")
    assert loaded.model_hash_ == comp.model_hash_ and loaded.code_min_.dtype == np.float64
    np.testing.assert_array_equal(loaded.read(tmp_path / "a.glc"), comp.read(tmp_path / "a.glc"))
    assert loaded.compress(X) == (tmp_path / "a.glc").read_bytes()
    rec = json.loads((tmp_path / "est" / "estimator.json").read_text())
    rec["state"]["model_hash_"] = "00" * HASH_BYTES
    (tmp_path / "est" / "estimator.json").write_text(json.dumps(rec))
    with pytest.raises(CheckpointError, match="changed since the estimator was saved"):
        Compressor.load(tmp_path / "est")


# ---------------------------------------------------------------------------- CLI
def test_cli_compress_decompress_end_to_end(X, tmp_path):
    np.savez(tmp_path / "data.npz", x=(X * 255).round().astype(np.uint8))
    r = run_cli("compress", "data.npz", "-o", "d.glc", "--bits", "6", "--epochs", "2", "--set", "latent_dim=4",
                "--set", "arch=mlp",
                "--report", "rep", cwd=tmp_path, env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    assert "compression ratio" in r.stdout and "genlab decompress d.glc" in r.stdout
    glc = tmp_path / "d.glc"
    assert glc.stat().st_size == 56 + math.ceil(64 * 4 * 6 / 8)
    assert (tmp_path / "d.compressor" / "estimator.json").is_file()
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert m["bits"] == 6 and m["file_bytes"] == glc.stat().st_size and "psnr" in m
    assert (tmp_path / "rep" / "comparison.png").is_file() and (tmp_path / "rep" / "report.html").is_file()
    # decompress finds the estimator beside the file
    assert main(["decompress", str(glc), "-o", str(tmp_path / "out.npz"), "--reference",
                 str(tmp_path / "data.npz")]) == 0
    est = Compressor.load(tmp_path / "d.compressor")
    got = np.load(tmp_path / "out.npz")["x"]
    np.testing.assert_array_equal(got, est.read(glc))
    assert main(["decompress", str(glc), "-o", str(tmp_path / "out.png")]) == 0
    assert (tmp_path / "out.png").stat().st_size > 0
    # reuse the saved estimator on new data (nothing saved beside the new file)
    assert main(["compress", str(tmp_path / "data.npz"), "-o", str(tmp_path / "e.glc"), "--run",
                 str(tmp_path / "d.compressor")]) == 0
    assert not (tmp_path / "e.compressor").exists()
    assert (tmp_path / "e.glc").read_bytes()[6] == 6  # the saved estimator keeps its bits


def test_cli_bad_input_exit_2(comp, X, tmp_path, capsys):
    comp.save(tmp_path / "est")
    comp.write(tmp_path / "a.glc", X)
    other = _fit(X, seed=3, epochs=1)
    other.save(tmp_path / "other")
    (tmp_path / "bad.glc").write_bytes((tmp_path / "a.glc").read_bytes()[:-5])
    np.save(tmp_path / "x.npy", X)
    cases = [
        (["decompress", str(tmp_path / "a.glc"), "-o", str(tmp_path / "o.npz"), "--run", str(tmp_path / "other")],
         "different model or quantiser"),
        (["decompress", str(tmp_path / "bad.glc"), "-o", str(tmp_path / "o.npz"), "--run", str(tmp_path / "est")],
         "truncated"),
        (["decompress", str(tmp_path / "a.glc"), "-o", str(tmp_path / "o.npz")], "does not exist; pass --run"),
        (["decompress", str(tmp_path / "a.glc"), "-o", str(tmp_path / "o.txt"), "--run", str(tmp_path / "est")],
         "unsupported output"),
        (["compress", str(tmp_path / "x.npy"), "-o", str(tmp_path / "c.glc"), "--run", str(tmp_path / "est"),
          "--bits", "20"], "bits must be an integer in 1..16"),
        (["compress", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "c.glc")], "no such file"),
    ]
    for argv, msg in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o.npz").exists() and not (tmp_path / "c.glc").exists()

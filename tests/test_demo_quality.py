"""The main job end to end: ``genlab demo`` writes the full run folder, and its conv VAE beats PCA.

PCA is the best *linear* autoencoder with k components; a deep VAE with a k-dimensional latent must
reconstruct held-out digits better (posterior-mean reconstructions, MSE in [0, 1] pixel units).
"""
import json

import pytest

from tests.conftest import run_cli


@pytest.mark.slow
def test_demo_writes_report_and_vae_beats_pca(tmp_path):
    out = tmp_path / "demo"
    r = run_cli("demo", "--out", out, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "report:" in r.stdout and str(out) in r.stdout
    for f in ("config.json", "metrics.jsonl", "model/config.json", "model/model.safetensors", "samples.png",
              "reconstructions.png", "interpolation.png", "loss_curves.png", "report.html"):
        assert (out / f).is_file(), f
    html = (out / "report.html").read_text()
    for f in ("samples.png", "reconstructions.png", "interpolation.png", "loss_curves.png", "test_mse", "pca_mse"):
        assert f in html
    m = json.loads((out / "final_metrics.json").read_text())
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == "vae" and cfg["data_info"]["shape"] == [1, 8, 8]
    assert m["test_mse"] < m["pca_mse"], m
    assert m["test_iwae_k100"] >= m["test_elbo"] - 0.5  # the IWAE bound is at least as tight as the ELBO

"""The VAE's ELBO and IWAE estimate against closed forms.

A linear-Gaussian VAE (hidden=[], likelihood gaussian) with orthogonal decoder columns has a diagonal
exact posterior that a linear encoder can represent. With the encoder set to that posterior, every
importance weight equals p(x), so ELBO and IWAE(k) both equal the exact marginal
log N(x; b, W W^T + sigma^2 I), for any k.
"""
import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from genlab.errors import ConfigError
from genlab.models.common import bernoulli_log_prob, gaussian_log_prob
from genlab.models.vae import VAE, VAEConfig

D, L, SIGMA = 6, 3, 0.5


def linear_gaussian_vae():
    torch.manual_seed(0)
    info = {"kind": "tabular", "shape": [D], "norm": {"shift": 0.0, "scale": 1.0}}
    vae = VAE(VAEConfig(latent_dim=L, hidden=[], likelihood="gaussian", sigma=SIGMA), info).double()
    q, _ = torch.linalg.qr(torch.randn(D, L, dtype=torch.float64))
    w = q * torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)  # orthogonal columns -> W^T W diagonal
    b = torch.randn(D, dtype=torch.float64)
    wtw = (w * w).sum(0)  # (L,)
    post_var = 1.0 / (1.0 + wtw / SIGMA**2)  # exact posterior variance, diagonal
    a = (post_var / SIGMA**2).unsqueeze(1) * w.T  # posterior mean = A (x - b)
    with torch.no_grad():
        enc, dec = vae.encoder.mlp[0], vae.decoder.mlp[0]
        dec.weight.copy_(w)
        dec.bias.copy_(b)
        enc.weight.zero_()
        enc.weight[:L].copy_(a)
        enc.bias[:L].copy_(-a @ b)
        enc.bias[L:].copy_(torch.log(post_var))
    cov = (w @ w.T + SIGMA**2 * torch.eye(D, dtype=torch.float64)).numpy()
    return vae, b.numpy(), cov


def test_elbo_and_iwae_equal_exact_log_marginal():
    vae, mean, cov = linear_gaussian_vae()
    x = torch.randn(7, D, dtype=torch.float64) * 2
    # check_input casts to float32; run the double model directly on float64 via the helpers
    vae.check_input = lambda t: t.to(torch.float64)
    exact = multivariate_normal(mean, cov).logpdf(x.numpy())
    for k in (1, 10, 300):
        iw = vae.log_likelihood(x, k=k, generator=torch.Generator().manual_seed(1)).numpy()
        np.testing.assert_allclose(iw, exact, rtol=0, atol=1e-8)
    # The ELBO (one sample of log p(x|z), analytic KL) equals log p(x) in expectation: average 20,000 draws.
    reps = 20_000
    elbo = vae.elbo(x.repeat_interleave(reps, 0), generator=torch.Generator().manual_seed(0)).view(7, reps)
    np.testing.assert_allclose(elbo.mean(1).numpy(), exact, rtol=0, atol=0.05)
    assert float(elbo.std(1).max()) > 0.1  # single draws really are noisy, so the average is what matches


def test_iwae_bound_tightens_with_k_on_mismatched_encoder():
    vae, mean, cov = linear_gaussian_vae()
    vae.check_input = lambda t: t.to(torch.float64)
    with torch.no_grad():
        vae.encoder.mlp[0].bias[L:] += 1.5  # posterior too wide: ELBO < log p(x)
    x = torch.randn(200, D, dtype=torch.float64)
    exact = multivariate_normal(mean, cov).logpdf(x.numpy()).mean()
    g = torch.Generator().manual_seed(3)
    vals = [float(vae.log_likelihood(x, k=k, generator=g).mean()) for k in (1, 10, 100)]
    assert vals[0] < vals[1] < vals[2] <= exact + 1e-3
    assert exact - vals[2] < 0.25 * (exact - vals[0])


def test_analytic_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mu, logvar = torch.randn(1, 4, dtype=torch.float64), torch.randn(1, 4, dtype=torch.float64) * 0.5
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    z = q.sample((400_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean()
    assert abs(float(VAE.kl(mu, logvar)) - float(mc)) < 0.01
    closed = torch.distributions.kl_divergence(q, p).sum()
    assert torch.allclose(VAE.kl(mu, logvar)[0], closed, atol=1e-12)


def test_likelihood_helpers_against_torch_distributions():
    torch.manual_seed(0)
    logits, x = torch.randn(3, 5), torch.rand(3, 5).round()
    ref = torch.distributions.Bernoulli(logits=logits).log_prob(x).sum(1)
    assert torch.allclose(bernoulli_log_prob(logits, x), ref, atol=1e-6)
    mean, y = torch.randn(3, 5), torch.randn(3, 5)
    ref = torch.distributions.Normal(mean, 0.3).log_prob(y).sum(1)
    assert torch.allclose(gaussian_log_prob(mean, y, math.log(0.3)), ref, atol=1e-5)


def test_bad_k_is_a_one_line_error():
    vae, _, _ = linear_gaussian_vae()
    with pytest.raises(ConfigError, match="k"):
        vae.log_likelihood(torch.zeros(1, D), k=0)

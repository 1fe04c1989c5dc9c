"""User-supplied networks (issue 12 item 7): ``networks={...}`` at run time and the ``build_networks`` hook of a
registered subclass. The tests check that the user's modules are the ones that compute (outputs equal the
modules' own outputs, their parameters are trained), that the output conventions are enforced with one-line
errors, and how such models save and reload."""
import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import genlab
from genlab import registry
from genlab.config import from_dict
from genlab.errors import CheckpointError, ConfigError
from genlab.nn import ConcatOutputs
from genlab.testing import tiny_image_data, tiny_tabular_data
from genlab.training import Trainer
from tests.conftest import run_cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "models" / "adding.md"
L = 4


def _build(name, data, networks=None, **cfg):
    entry = registry.get_model_entry(name)
    kw = {} if networks is None else {"networks": networks}
    return entry.cls(from_dict(entry.config_cls, {"latent_dim": L, **cfg}), data.info(), **kw)


def _enc(out=2 * L, d=64):
    return nn.Sequential(nn.Flatten(), nn.Linear(d, 32), nn.Tanh(), nn.Linear(32, out))


def _dec(shape=(1, 8, 8)):
    return nn.Sequential(nn.Linear(L, 32), nn.Tanh(), nn.Linear(32, int(torch.Size(shape).numel())),
                         nn.Unflatten(1, shape))


@pytest.fixture
def clean_registry():
    registry._ensure_loaded()
    saved = dict(registry._MODELS)
    yield
    registry._MODELS.clear()
    registry._MODELS.update(saved)


# -- the user's modules are the ones that compute --------------------------------------------------------------------
@torch.no_grad()
def test_vae_runs_the_user_encoder_and_decoder():
    data = tiny_image_data()
    enc, dec = _enc(), _dec()
    m = _build("vae", data, {"encoder": enc, "decoder": dec}).eval()
    assert m.encoder is enc and m.decoder is dec and m.user_networks == ("decoder", "encoder")
    x = data.x[:6]
    mu, logvar = m.posterior(x)
    h = enc(x)
    assert torch.equal(mu, h[:, :L]) and torch.equal(logvar, h[:, L:].clamp(-30, 20))  # [mu, logvar] concatenated
    assert torch.equal(m.encode(x), h[:, :L])
    z = torch.randn(5, L)
    assert torch.equal(m.decode_raw(z), dec(z)) and torch.equal(m.decode(z), torch.sigmoid(dec(z)))  # logits
    assert torch.equal(m.reconstruct(x), torch.sigmoid(dec(h[:, :L])))
    ids = {id(p) for p in m.parameters()}
    assert all(id(p) in ids for p in [*enc.parameters(), *dec.parameters()])


@torch.no_grad()
def test_gaussian_vae_decoder_gives_the_means_on_tabular_data():
    data = tiny_tabular_data().standardized()
    dec = nn.Linear(L, 5)
    m = _build("vae", data, {"decoder": dec}).eval()
    z = torch.randn(3, L)
    assert m.likelihood == "gaussian" and torch.equal(m.decode(z), dec(z))  # identity link for tabular means


@torch.no_grad()
def test_concat_outputs_adapts_a_mu_logvar_tuple_encoder():
    class TupleEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.mu, self.lv = nn.Linear(64, L), nn.Linear(64, L)

        def forward(self, x):
            return self.mu(x.flatten(1)), self.lv(x.flatten(1))

    data = tiny_image_data()
    enc = TupleEncoder()
    with pytest.raises(ConfigError, match=r"returned a tuple, not a tensor.*ConcatOutputs"):
        _build("vae", data, {"encoder": enc})
    m = _build("vae", data, {"encoder": ConcatOutputs(enc)}).eval()
    x = data.x[:4]
    mu, logvar = m.posterior(x)
    assert torch.equal(mu, enc(x)[0]) and torch.equal(logvar, enc(x)[1].clamp(-30, 20))


@torch.no_grad()
def test_ae_family_runs_the_user_networks():
    data = tiny_image_data()
    enc, dec = _enc(out=L), _dec()
    m = _build("ae", data, {"encoder": enc, "decoder": dec}).eval()
    x = data.x[:5]
    assert torch.equal(m.encode(x), enc(x)) and torch.equal(m.reconstruct(x), torch.sigmoid(dec(enc(x))))
    # the contractive penalty follows the user encoder: one Linear + sigmoid codes is the closed form
    lin = nn.Sequential(nn.Flatten(), nn.Linear(64, L))
    c = _build("contractive-ae", data, {"encoder": lin}, encoder_activation="sigmoid")
    assert c.closed_form and c._linear is lin[1]


def test_cvae_networks_take_the_one_hot_labels():
    seen = []

    class Enc(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(64 + 4, 2 * L)

        def forward(self, x, onehot):
            seen.append(onehot.clone())
            return self.net(torch.cat([x.flatten(1), onehot], 1))

    data = tiny_image_data()
    with pytest.raises(ConfigError, match=r"cvae: networks\['encoder'\] failed on input \(2, 1, 8, 8\), \(2, 4\)"):
        _build("cvae", data, {"encoder": _enc()})
    m = _build("cvae", data, {"encoder": Enc()}).eval()
    y = data.y[:6]
    m.encode(data.x[:6], y)
    assert torch.equal(seen[-1], nn.functional.one_hot(y, 4).float())


@torch.no_grad()
def test_gan_runs_the_user_generator_and_discriminator():
    data = tiny_image_data()
    g = nn.Sequential(nn.Linear(L, 64), nn.Sigmoid(), nn.Unflatten(1, (1, 8, 8)))
    d = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    m = _build("gan", data, {"generator": g, "discriminator": d}).eval()
    z = torch.randn(7, L, generator=torch.Generator().manual_seed(3))
    assert torch.equal(m.sample(7, generator=torch.Generator().manual_seed(3)), g(z))
    x = data.x[:5]
    assert torch.equal(m.critic(x), d(x).reshape(-1))
    assert {id(p) for p in d.parameters()} == {id(p) for p in m.discriminator_parameters()}
    assert not {id(p) for p in d.parameters()} & {id(p) for p in m.generator_parameters()}


def test_gan_options_act_on_the_user_discriminator():
    data = tiny_image_data()
    d = nn.Sequential(nn.Flatten(), nn.Linear(64, 1))
    m = _build("gan", data, {"discriminator": d}, spectral_norm=True)
    assert nn.utils.parametrize.is_parametrized(d[1], "weight")  # spectral_norm applied to the user's layer
    d2 = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    w = _build("wgan", data, {"discriminator": d2}, clip_value=0.01)
    Trainer({"epochs": 1, "batch_size": 16, "precision": "fp32", "channels_last": False}).fit(w, data)
    assert all(float(p.detach().abs().max()) <= 0.01 + 1e-7 for p in d2.parameters())  # weight clipping reached them


def test_dry_run_leaves_batchnorm_statistics_and_mode_alone():
    data = tiny_image_data()
    d = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    _build("gan", data, {"discriminator": d})
    bn = d[2]
    assert d.training and int(bn.num_batches_tracked) == 0 and torch.equal(bn.running_mean, torch.zeros(8))


def test_training_trains_the_user_networks():
    data = tiny_image_data()
    torch.manual_seed(0)
    enc, dec = _enc(), _dec()
    before = [p.detach().clone() for p in enc.parameters()]
    run = genlab.train("vae", data, config={"model": {"latent_dim": L}, "trainer": {
        "epochs": 2, "batch_size": 16, "precision": "fp32", "channels_last": False}}, networks={"encoder": enc,
                                                                                                "decoder": dec})
    assert run.model.encoder is enc and run.model.decoder is dec
    assert all(not torch.equal(a, b) for a, b in zip(before, enc.parameters()))
    assert run.metrics["steps"] > 0 and run.metrics["test_elbo"] == run.metrics["test_elbo"]


# -- conventions: one-line errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, networks, match", [
    ("vae", {"encoder": nn.Sequential(nn.Flatten(), nn.Linear(64, L))},
     r"vae: networks\['encoder'\] returned shape \(2, 4\) for a batch of 2, expected \(2, 8\); it must map "
     r"\(B, \*shape\) -> \(B, 2\*latent_dim\) = \[mu, logvar\]"),
    ("ae", {"decoder": nn.Linear(L, 64)}, r"expected \(2, 1, 8, 8\); it must map \(B, latent_dim\) -> \(B, \*shape\)"),
    ("ae", {"encoder": nn.Linear(3, 3)}, r"failed on input \(2, 1, 8, 8\) \(RuntimeError: mat1 and mat2"),
    ("vae", {"encoder": "my encoder"}, r"networks\['encoder'\] must be a torch.nn.Module, got str"),
    ("vae", {"generator": nn.Linear(4, 4)}, r"unknown network 'generator' in networks; it takes encoder, decoder"),
    ("cgan", {"discriminator": nn.Linear(64, 1)}, r"cgan conditions its discriminator on the labels inside the model"),
    ("gan", {"discriminator": nn.Sequential(nn.Flatten(), nn.Linear(64, 3))},
     r"expected \(2,\) or \(2, 1\); it must map \(B, \*shape\) model-space samples -> one score per sample"),
    ("gan", {"generator": nn.Sequential(nn.Linear(L, 64), nn.Unflatten(1, (1, 8, 8))).double()},
     r"gan: networks\['generator'\] failed on input \(2, 4\) \(RuntimeError"),
    ("vae", ["encoder"], r"networks must be a dict of slot name -> torch.nn.Module, got list"),
])
def test_convention_errors_are_one_line(name, networks, match):
    with pytest.raises(ConfigError, match=match) as e:
        _build(name, tiny_image_data(), networks)
    assert "\n" not in str(e.value)


def test_a_model_without_slots_refuses_networks(tmp_path, clean_registry, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "ext_pkg"))
    import genlab_ext_demo.models  # noqa: F401  (registers tiny-vae, which declares no network slots)
    with pytest.raises(ConfigError, match=r"model 'tiny-vae' takes no user-supplied networks"):
        genlab.train("tiny-vae", tiny_image_data(), networks={"encoder": _enc()})


# -- saving and reloading ---------------------------------------------------------------------------------------------
def test_run_with_user_networks_reloads_and_resumes_only_with_them(tmp_path):
    data = tiny_image_data()
    cfg = {"model": {"latent_dim": L}, "trainer": {"epochs": 1, "batch_size": 16, "precision": "fp32",
                                                   "channels_last": False}}
    torch.manual_seed(0)
    run = genlab.train("vae", data, out=tmp_path / "run", config=cfg, networks={"encoder": _enc(), "decoder": _dec()})
    for f in (tmp_path / "run" / "config.json", tmp_path / "run" / "model" / "config.json"):
        assert json.loads(f.read_text())["user_networks"] == ["decoder", "encoder"]
    with pytest.raises(CheckpointError, match=r"trained with user-supplied networks \(decoder, encoder\) that genlab "
                                              r"cannot rebuild from JSON; load it in Python with genlab.load\(path, "
                                              r"networks=") as e:
        genlab.load(tmp_path / "run")
    assert "\n" not in str(e.value)
    loaded = genlab.load(tmp_path / "run", networks={"encoder": _enc(), "decoder": _dec()})
    x = data.x[:8]
    assert torch.equal(loaded.reconstruct(x), run.model.eval().reconstruct(x))
    with pytest.raises(ConfigError, match=r"trained with user-supplied networks \(decoder, encoder\); resume it in "
                                          r"Python with genlab.train\(resume=RUN, networks="):
        genlab.train(resume=tmp_path / "run", data=data, config={"trainer": {"epochs": 2}})
    more = genlab.train(resume=tmp_path / "run", data=data, config={"trainer": {"epochs": 2}},
                        networks={"encoder": _enc(), "decoder": _dec()})
    assert more.result.epoch == 2


def test_cli_refuses_a_run_with_user_networks_in_one_line(tmp_path):
    data = tiny_image_data()
    genlab.train("vae", data, out=tmp_path / "run", networks={"decoder": _dec()}, figures=False,
                 config={"model": {"latent_dim": L}, "trainer": {"epochs": 1, "batch_size": 32, "precision": "fp32"}})
    p = run_cli("info", tmp_path / "run")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(r"genlab: error: .*user-supplied networks \(decoder\).*genlab.load\(path, "
                                        r"networks=", lines[0])


def test_doc_subclass_with_build_networks_saves_and_reloads(tmp_path, clean_registry):
    """docs/models/adding.md's build_networks example: the subclass rebuilds its own networks, so nothing is recorded
    as user networks and the model reloads from its folder alone."""
    block = next(b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S) if "def build_networks" in b)
    ns = {"__name__": "pb_doc_snippet"}
    exec(compile(block, str(DOC), "exec"), ns)
    data = tiny_image_data()
    m = _build("vae-mlp64", data).eval()
    assert type(m) is ns["MyVAE"] and isinstance(m.encoder, nn.Sequential) and m.encoder[1].out_features == 64
    assert m.user_networks == ()
    genlab.save_model(m, tmp_path / "m")
    rec = json.loads((tmp_path / "m" / "config.json").read_text())
    assert "user_networks" not in rec and rec["class"] == "pb_doc_snippet:MyVAE" and rec["distribution"] is None
    x = data.x[:5]
    assert torch.equal(genlab.load(tmp_path / "m").reconstruct(x), m.reconstruct(x))

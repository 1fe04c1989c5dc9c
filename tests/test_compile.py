"""trainer.compile: torch.compile of the model's networks, same numbers as eager, back to eager afterwards."""
import pytest
import torch

import genlab
from genlab.data import TensorDataset
from genlab.errors import ConfigError
from genlab.training.compile import wants_compile


def test_wants_compile_settings():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not wants_compile(False, cpu) and not wants_compile(False, cuda)
    assert wants_compile(True, cpu) and wants_compile(True, cuda)
    assert not wants_compile("auto", cpu) and not wants_compile("auto", cuda)  # auto: off (measured slower)
    assert not wants_compile(True, cuda, deterministic=True)  # deterministic runs measure and compile nothing


def test_bad_compile_value_is_one_line_error():
    with pytest.raises(ConfigError, match="compile"):
        genlab.train("ae", TensorDataset(torch.randn(16, 3)), config={"trainer": {"compile": "sometimes"}},
                     figures=False)


def test_double_backward_models_stay_eager(caplog):
    """wgan-gp's gradient penalty needs double backward, which torch.compile cannot train: it stays eager."""
    from genlab.models.base import capabilities  # noqa: F401 (the trait sits beside the capabilities)
    from genlab.registry import get_model_entry
    from genlab.testing import build
    from genlab.training.compile import compile_model
    assert get_model_entry("wgan-gp").cls.double_backward
    assert get_model_entry("contractive-ae").cls.double_backward
    # the GANs' R1 / R2, progan's gradient penalty and stylegan's path length depend on the config
    img = TensorDataset(torch.rand(16, 1, 8, 8) * 2 - 1)
    for name, on, off in (("dcgan", {}, {"r1_gamma": 0.0}), ("gan", {"r2_gamma": 0.1}, {"r1_gamma": 0.0}),
                          ("progan", {}, {"loss": "nonsaturating"}),
                          ("stylegan", {"r1_gamma": 0.0, "pl_weight": 2.0}, {"r1_gamma": 0.0})):
        assert build(name, img, on).double_backward, name
        assert not build(name, img, off).double_backward, name
    run = genlab.train("wgan-gp", img, config={"trainer": {"epochs": 1, "batch_size": 8, "fid_samples": 0}},
                       figures=False)
    with caplog.at_level("WARNING", logger="genlab.training.compile"):
        assert compile_model(run.model, True, torch.device("cpu")) == []
    assert "double backward" in caplog.text


def test_dcgan_with_its_default_r1_trains_under_compile_true():
    """dcgan's default R1 penalty differentiates through a gradient: trainer.compile=true trains it eagerly (it
    raised torch.compile's 'does not currently support double backward' at the first R1 step before)."""
    run = genlab.train("dcgan", TensorDataset(torch.rand(16, 1, 8, 8) * 2 - 1), config={"trainer": {
        "epochs": 1, "batch_size": 8, "fid_samples": 0, "monitor_every": 0, "compile": True}}, figures=False)
    assert run.model.config.r1_gamma > 0 and all(torch.isfinite(p).all() for p in run.model.parameters())


@pytest.mark.slow
def test_compiled_training_equals_eager_and_leaves_an_eager_model():
    torch.manual_seed(0)
    ds = TensorDataset(torch.randn(48, 5))
    states = {}
    for comp in (False, True):
        run = genlab.train("ae", ds, config={"model": {"latent_dim": 2}, "trainer": {
            "epochs": 1, "batch_size": 16, "compile": comp, "seed": 0, "precision": "fp32"}}, figures=False)
        assert all(getattr(m, "_compiled_call_impl", None) is None for m in run.model.modules())
        states[comp] = {k: v.clone() for k, v in run.model.state_dict().items()}
    assert list(states[True]) == list(states[False])  # same keys: no _orig_mod wrapper in checkpoints
    for k in states[False]:  # inductor may fuse/reorder float32 arithmetic: equal to rounding
        torch.testing.assert_close(states[True][k], states[False][k], rtol=1e-5, atol=1e-6)

"""The sequence data kind and per-sample extras (paired data) of TensorDataset."""
import pytest
import torch

from genlab.data import TensorDataset
from genlab.data.dataset import check_data_info
from genlab.errors import DataError


def _paired(n=10):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 8, 8, generator=g)
    src = x[:, :, ::2, ::2].clone()
    mask = (torch.rand(n, 1, 8, 8, generator=g) > 0.5).float()
    return TensorDataset(x, torch.arange(n) % 2, extras={"src": src, "mask": mask})


def test_extras_follow_x_through_split_subset_and_batches():
    ds = _paired(10)
    tr, va, te = ds.split(val=0.2, test=0.2, seed=1)
    for part in (tr, va, te):
        assert torch.equal(part.extras["src"], part.x[:, :, ::2, ::2])
        assert part.extras["mask"].shape == (len(part), 1, 8, 8)
    seen = 0
    for b in tr.batches(3, shuffle=True, generator=torch.Generator().manual_seed(2)):
        assert set(b) == {"x", "y", "src", "mask"}
        assert torch.equal(b["src"], b["x"][:, :, ::2, ::2])       # rows stay aligned under shuffling
        seen += len(b["x"])
    assert seen == len(tr)
    info = ds.info()
    assert info["extras"] == {"src": [1, 4, 4], "mask": [1, 8, 8]}
    assert ds.to("cpu").extras["src"].shape == (10, 1, 4, 4)


def test_extras_bad_input():
    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(DataError, match="3 samples|4 samples"):
        TensorDataset(x, extras={"src": torch.rand(3, 1, 4, 4)})
    with pytest.raises(DataError, match="not allowed"):
        TensorDataset(x, extras={"y": torch.rand(4, 1)})
    info = _paired(4).info()
    info["extras"] = {"src": [0, 4]}
    with pytest.raises(DataError, match="extras"):
        check_data_info(info)


def test_sequence_kind_standardised_per_channel():
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(6, 2, 50, generator=g) * torch.tensor([[3.0], [0.5]]) + torch.tensor([[10.0], [-1.0]])
    ds = TensorDataset(raw)
    assert ds.kind == "sequence" and ds.sample_shape == (2, 50)
    st = ds.standardized()
    flat = st.x.transpose(1, 2).reshape(-1, 2)
    assert torch.allclose(flat.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(flat.pow(2).mean(0).sqrt(), torch.ones(2), atol=1e-5)
    assert torch.allclose(st.norm.to_raw(st.x), raw, atol=1e-4)      # maps back to the original units
    assert check_data_info(st.info())["kind"] == "sequence"
    with pytest.raises(DataError, match="NaN"):
        TensorDataset(torch.full((2, 1, 5), float("nan")))
    bad = st.info()
    bad["shape"] = [2, 50, 1]
    with pytest.raises(DataError, match="2 dimensions"):
        check_data_info(bad)

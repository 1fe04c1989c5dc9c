import torch

from genlab.data import TensorDataset, load_dataset


def _ds(n=103):
    return TensorDataset(torch.arange(n, dtype=torch.float32)[:, None], torch.arange(n) % 4)


def test_split_deterministic_and_disjoint():
    ds = _ds()
    a = ds.split(val=0.2, test=0.1, seed=3)
    b = ds.split(val=0.2, test=0.1, seed=3)
    c = ds.split(val=0.2, test=0.1, seed=4)
    ids = [s.x[:, 0].long() for s in a]
    assert [len(i) for i in ids] == [72, 21, 10]
    assert all(torch.equal(s.x, t.x) for s, t in zip(a, b))
    assert not torch.equal(a[0].x, c[0].x)
    assert sorted(torch.cat(ids).tolist()) == list(range(103))  # disjoint and complete
    assert torch.equal(a[0].y, ids[0] % 4)  # labels follow their samples


def test_split_of_loaded_dataset_keeps_metadata():
    tr, va, te = load_dataset("digits").split(val=0.1, test=0.1, seed=0)
    assert tr.classes == va.classes and float(tr.norm.scale) == 16.0
    assert len(tr) + len(va) + len(te) == 1797


def test_batches_cover_each_sample_once_per_epoch():
    ds = _ds()
    g = torch.Generator().manual_seed(0)
    epochs = []
    for _ in range(2):
        seen = []
        for b in ds.batches(10, shuffle=True, generator=g):
            assert torch.equal(b["y"], b["x"][:, 0].long() % 4)
            seen += b["x"][:, 0].long().tolist()
        assert sorted(seen) == list(range(103))
        epochs.append(seen)
    assert epochs[0] != epochs[1] and epochs[0] != list(range(103))
    assert ds.num_batches(10) == 11 and sum(1 for _ in ds.batches(10, drop_last=True)) == 10

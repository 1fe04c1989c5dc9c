"""FID Inception-V3: state-dict layout, forward shapes, weight loading, preprocessing."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genlab.errors import DataError, MissingFilesError
from genlab.metrics import inception as inc

# Compact spec of every BasicConv2d, written from torchvision's Inception3 (aux_logits=False) with
# pytorch-fid's FID blocks: (name, out_channels, in_channels, kernel_h, kernel_w).
_STEM = [("Conv2d_1a_3x3", 32, 3, 3, 3), ("Conv2d_2a_3x3", 32, 32, 3, 3), ("Conv2d_2b_3x3", 64, 32, 3, 3),
         ("Conv2d_3b_1x1", 80, 64, 1, 1), ("Conv2d_4a_3x3", 192, 80, 3, 3)]


def _a(cin, pool):
    return [("branch1x1", 64, cin, 1, 1), ("branch5x5_1", 48, cin, 1, 1), ("branch5x5_2", 64, 48, 5, 5),
            ("branch3x3dbl_1", 64, cin, 1, 1), ("branch3x3dbl_2", 96, 64, 3, 3), ("branch3x3dbl_3", 96, 96, 3, 3),
            ("branch_pool", pool, cin, 1, 1)]


def _b(cin):
    return [("branch3x3", 384, cin, 3, 3), ("branch3x3dbl_1", 64, cin, 1, 1), ("branch3x3dbl_2", 96, 64, 3, 3),
            ("branch3x3dbl_3", 96, 96, 3, 3)]


def _c(c7):
    return [("branch1x1", 192, 768, 1, 1), ("branch7x7_1", c7, 768, 1, 1), ("branch7x7_2", c7, c7, 1, 7),
            ("branch7x7_3", 192, c7, 7, 1), ("branch7x7dbl_1", c7, 768, 1, 1), ("branch7x7dbl_2", c7, c7, 7, 1),
            ("branch7x7dbl_3", c7, c7, 1, 7), ("branch7x7dbl_4", c7, c7, 7, 1), ("branch7x7dbl_5", 192, c7, 1, 7),
            ("branch_pool", 192, 768, 1, 1)]


def _d():
    return [("branch3x3_1", 192, 768, 1, 1), ("branch3x3_2", 320, 192, 3, 3), ("branch7x7x3_1", 192, 768, 1, 1),
            ("branch7x7x3_2", 192, 192, 1, 7), ("branch7x7x3_3", 192, 192, 7, 1), ("branch7x7x3_4", 192, 192, 3, 3)]


def _e(cin):
    return [("branch1x1", 320, cin, 1, 1), ("branch3x3_1", 384, cin, 1, 1), ("branch3x3_2a", 384, 384, 1, 3),
            ("branch3x3_2b", 384, 384, 3, 1), ("branch3x3dbl_1", 448, cin, 1, 1), ("branch3x3dbl_2", 384, 448, 3, 3),
            ("branch3x3dbl_3a", 384, 384, 1, 3), ("branch3x3dbl_3b", 384, 384, 3, 1), ("branch_pool", 192, cin, 1, 1)]


def expected_state_dict_spec():
    convs = list(_STEM)
    blocks = [("Mixed_5b", _a(192, 32)), ("Mixed_5c", _a(256, 64)), ("Mixed_5d", _a(288, 64)), ("Mixed_6a", _b(288)),
              ("Mixed_6b", _c(128)), ("Mixed_6c", _c(160)), ("Mixed_6d", _c(160)), ("Mixed_6e", _c(192)),
              ("Mixed_7a", _d()), ("Mixed_7b", _e(1280)), ("Mixed_7c", _e(2048))]
    for block, layers in blocks:
        convs += [(f"{block}.{name}", *rest) for name, *rest in layers]
    spec = []
    for name, cout, cin, kh, kw in convs:
        spec += [(f"{name}.conv.weight", (cout, cin, kh, kw)), (f"{name}.bn.weight", (cout,)),
                 (f"{name}.bn.bias", (cout,)), (f"{name}.bn.running_mean", (cout,)),
                 (f"{name}.bn.running_var", (cout,)), (f"{name}.bn.num_batches_tracked", ())]
    return spec + [("fc.weight", (1008, 2048)), ("fc.bias", (1008,))]


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return inc.InceptionV3FID().eval()


def test_state_dict_keys_and_shapes(net):
    got = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    assert got == expected_state_dict_spec()
    assert len(got) == 566
    # 27,161,264 (torchvision, 1000 classes, with aux) - 3,326,696 (aux) + 8 * 2049 (1008 logits)
    assert sum(p.numel() for p in net.parameters()) == 23_850_960


def test_forward_two_images(net):
    imgs = torch.randint(0, 256, (2, 3, 64, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    feats, logits = inc.inception_features(imgs, net, batch_size=2)
    assert feats.shape == (2, 2048) and logits.shape == (2, 1008)
    assert np.isfinite(feats).all() and np.isfinite(logits).all()
    assert (feats >= 0).all()  # average of ReLU outputs


def test_fid_patches(net):
    seen = {}
    hooks = [getattr(net, b).branch_pool.register_forward_pre_hook(lambda m, a, b=b: seen.__setitem__(b, a[0]))
             for b in ("Mixed_5b", "Mixed_7b", "Mixed_7c")]
    try:
        x5 = torch.ones(1, 192, 35, 35)
        net.Mixed_5b(x5)
        torch.testing.assert_close(seen["Mixed_5b"], x5)  # TF average pool ignores padding
        x7 = torch.rand(1, 1280, 8, 8)
        net.Mixed_7b(x7)
        torch.testing.assert_close(seen["Mixed_7b"], F.avg_pool2d(x7, 3, 1, 1, count_include_pad=False))
        x7c = torch.rand(1, 2048, 8, 8)
        net.Mixed_7c(x7c)
        torch.testing.assert_close(seen["Mixed_7c"], F.max_pool2d(x7c, 3, 1, 1))  # max pool in the last block
    finally:
        for h in hooks:
            h.remove()


def test_checkpoint_loads(net, tmp_path):
    path = tmp_path / "weights.pth"
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, path)  # old-style checkpoint without num_batches_tracked
    loaded = inc.load_inception(path, download=False)
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())


def test_wrong_checkpoint(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(10, 2048)}, path)
    with pytest.raises(DataError, match="does not fit"):
        inc.load_inception(path, download=False)


def test_missing_weights_message(tmp_path, monkeypatch):
    monkeypatch.setenv(inc.ENV_VAR, str(tmp_path / "absent.pth"))
    with pytest.raises(MissingFilesError) as e:
        inc.load_inception(download=False)
    msg = str(e.value)
    assert "\n" not in msg and inc.INCEPTION_URL in msg and inc.ENV_VAR in msg and "absent.pth" in msg


def _tf_resize_loop(img, out_h, out_w):
    h, w = img.shape
    out = np.zeros((out_h, out_w))
    for i in range(out_h):
        sy = i * (h / out_h)
        y0 = int(np.floor(sy)); y1 = min(y0 + 1, h - 1); fy = sy - y0
        for j in range(out_w):
            sx = j * (w / out_w)
            x0 = int(np.floor(sx)); x1 = min(x0 + 1, w - 1); fx = sx - x0
            top = img[y0, x0] + (img[y0, x1] - img[y0, x0]) * fx
            bot = img[y1, x0] + (img[y1, x1] - img[y1, x0]) * fx
            out[i, j] = top + (bot - top) * fy
    return out


def test_tf_bilinear_resize_matches_loop():
    img = np.random.default_rng(0).uniform(0, 255, size=(5, 7))
    got = inc.tf1_bilinear_resize(torch.from_numpy(img).view(1, 1, 5, 7), (13, 11))[0, 0].numpy()
    np.testing.assert_allclose(got, _tf_resize_loop(img, 13, 11), rtol=1e-6, atol=1e-6)
    down = inc.tf1_bilinear_resize(torch.from_numpy(img).view(1, 1, 5, 7), (3, 4))[0, 0].numpy()
    np.testing.assert_allclose(down, _tf_resize_loop(img, 3, 4), rtol=1e-6, atol=1e-6)
    same = inc.tf1_bilinear_resize(torch.from_numpy(img).view(1, 1, 5, 7), (5, 7))
    np.testing.assert_array_equal(same[0, 0].numpy(), img)


def test_preprocess_modes():
    u8 = torch.randint(0, 256, (2, 1, 9, 9), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    x = inc.preprocess(u8, "tf-bilinear")
    assert x.shape == (2, 3, 299, 299) and x.dtype == torch.float32
    assert torch.equal(x[:, 0], x[:, 2])  # grey repeated
    torch.testing.assert_close(inc.preprocess(u8.float() / 255, "tf-bilinear"), x, rtol=0, atol=0)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 127 / 128
    y = inc.preprocess(u8, "pytorch-fid")
    ref = 2 * F.interpolate(u8.float().expand(-1, 3, -1, -1) / 255, size=(299, 299), mode="bilinear",
                            align_corners=False) - 1
    torch.testing.assert_close(y, ref)
    with pytest.raises(DataError, match="\\[0, 1\\]"):
        inc.preprocess(torch.full((1, 3, 8, 8), 2.0))
    with pytest.raises(DataError, match="mode"):
        inc.preprocess(u8, "antialias")

"""The latent-space maths (genlab.latent): lerp/slerp closed forms, traversal grids, code arithmetic."""
import math

import numpy as np
import pytest
import torch

from genlab.errors import ConfigError, DataError
from genlab.latent import code_arithmetic, interpolator, lerp, slerp, traversal_codes


def test_lerp_closed_form_and_exact_endpoints():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    out = lerp(a, b, 6)
    assert out.shape == (6, 3, 5) and out.dtype == np.float64
    for k in range(6):
        t = k / 5
        np.testing.assert_allclose(out[k], a + t * (b - a), rtol=0, atol=1e-14)
    assert np.array_equal(out[0], a) and np.array_equal(out[-1], b)
    # float32 tensors in -> float32 tensor out, endpoints bit-exact
    ta, tb = torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)
    tout = lerp(ta, tb, 4)
    assert isinstance(tout, torch.Tensor) and tout.dtype == torch.float32 and tout.shape == (4, 3, 5)
    assert torch.equal(tout[0], ta) and torch.equal(tout[-1], tb)
    # integer arrays are interpolated as floats
    np.testing.assert_allclose(lerp(np.array([0, 0]), np.array([4, 8]), 5), [[0, 0], [1, 2], [2, 4], [3, 6], [4, 8]])


def test_slerp_orthogonal_unit_vectors_stay_on_the_circle():
    e1, e2 = np.eye(4)[0], np.eye(4)[1]
    out = slerp(e1, e2, 9)
    t = np.linspace(0, 1, 9)
    expected = np.cos(t * np.pi / 2)[:, None] * e1 + np.sin(t * np.pi / 2)[:, None] * e2
    np.testing.assert_allclose(out, expected, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-12)
    assert np.array_equal(out[0], e1) and np.array_equal(out[-1], e2)
    # the midpoint of lerp has norm 1/sqrt(2): the two differ where they should
    assert abs(np.linalg.norm(lerp(e1, e2, 3)[1]) - math.sqrt(0.5)) < 1e-12


def test_slerp_unequal_norms_interpolates_angle_and_norm_linearly():
    theta = np.deg2rad(60.0)
    a = 2.0 * np.array([1.0, 0.0, 0.0])
    b = 5.0 * np.array([np.cos(theta), np.sin(theta), 0.0])
    out = slerp(a, b, 7)
    t = np.linspace(0, 1, 7)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 2 + 3 * t, atol=1e-12)  # |z(t)| = (1-t)|a| + t|b|
    np.testing.assert_allclose(np.arctan2(out[:, 1], out[:, 0]), t * theta, atol=1e-12)  # constant angular speed
    np.testing.assert_allclose(out[:, 2], 0.0, atol=1e-15)


def test_slerp_rows_are_independent_and_torch_matches_numpy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    out = slerp(a, b, 5)
    for i in range(4):
        np.testing.assert_allclose(out[:, i], slerp(a[i], b[i], 5), atol=1e-13)
    np.testing.assert_allclose(slerp(torch.tensor(a), torch.tensor(b), 5).numpy(), out, atol=1e-13)
    # angle between consecutive points is constant
    u = out / np.linalg.norm(out, axis=-1, keepdims=True)
    steps = np.arccos(np.clip((u[1:] * u[:-1]).sum(-1), -1, 1))  # (4, rows)
    np.testing.assert_allclose(steps, steps[:1].repeat(4, 0), atol=1e-7)


def test_slerp_falls_back_to_lerp_when_parallel_antiparallel_or_zero():
    e1 = np.array([1.0, 0.0, 0.0])
    for a, b in ((e1, 3 * e1), (e1, -2 * e1), (np.zeros(3), e1), (e1, e1 + np.array([0, 1e-9, 0]))):
        np.testing.assert_allclose(slerp(a, b, 5), lerp(a, b, 5), atol=1e-15)
    # a row-wise mix: one parallel row, one orthogonal row
    a = np.array([[1.0, 0.0], [1.0, 0.0]])
    b = np.array([[2.0, 0.0], [0.0, 1.0]])
    out = slerp(a, b, 3)
    np.testing.assert_allclose(out[:, 0], lerp(a[0], b[0], 3))
    np.testing.assert_allclose(out[1, 1], [math.sqrt(0.5), math.sqrt(0.5)], atol=1e-12)


def test_interpolation_input_errors():
    with pytest.raises(ConfigError, match=r"steps must be an integer in \[2, 10000\]"):
        lerp(np.zeros(2), np.ones(2), 1)
    with pytest.raises(ConfigError, match=r"steps must be an integer in \[2, 10000\]"):
        slerp(np.zeros(2), np.ones(2), 2.5)
    with pytest.raises(ConfigError, match=r"steps must be an integer in \[2, 10000\] .*got 100000000000"):
        lerp(np.zeros(2), np.ones(2), 10**11)  # hostile: one line, not an allocator failure
    with pytest.raises(DataError, match="same shape"):
        slerp(np.zeros(2), np.ones(3), 4)
    with pytest.raises(DataError, match="finite"):
        lerp(np.array([np.nan, 0.0]), np.ones(2), 4)


def test_interpolator_names():
    assert interpolator("linear") is lerp and interpolator("spherical") is slerp
    with pytest.raises(ConfigError, match="unknown interpolation method 'cubic'; use 'linear' or 'spherical'"):
        interpolator("cubic")


def test_apps_reexport_the_same_functions():
    from genlab.apps import lerp as apps_lerp
    from genlab.apps import slerp as apps_slerp
    assert apps_lerp is lerp and apps_slerp is slerp


# ---------------------------------------------------------------------------- traversal
def test_traversal_codes_by_hand():
    center = np.array([0.5, -1.0, 2.0])
    scale = np.array([1.0, 0.5, 4.0])
    codes = traversal_codes(center, scale, [2, 0], span=2.0, steps=5)
    assert isinstance(codes, torch.Tensor) and codes.shape == (2, 5, 3) and codes.dtype == torch.float32
    offsets = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    want = np.tile(center, (2, 5, 1))
    want[0, :, 2] = 2.0 + offsets * 4.0  # dimension 2 in units of its scale 4
    want[1, :, 0] = 0.5 + offsets * 1.0
    np.testing.assert_allclose(codes.numpy(), want, rtol=0, atol=1e-6)
    # the middle step of an odd grid is the centre itself
    np.testing.assert_array_equal(codes[:, 2].numpy(), np.tile(center, (2, 1)).astype(np.float32))
    # a tensor centre gives the same codes
    torch.testing.assert_close(traversal_codes(torch.tensor(center), torch.tensor(scale), [2, 0], span=2.0,
                                               steps=5), codes)


def test_traversal_codes_errors():
    with pytest.raises(ConfigError, match=r"dims must be latent dimensions in \[0, 2\], got \[3\]"):
        traversal_codes(np.zeros(3), np.ones(3), [0, 3])
    with pytest.raises(ConfigError, match="span must be a finite number > 0"):
        traversal_codes(np.zeros(3), np.ones(3), [0], span=float("inf"))
    with pytest.raises(ConfigError, match="span must be"):
        traversal_codes(np.zeros(3), np.ones(3), [0], span=True)
    with pytest.raises(ConfigError, match=r"steps must be an integer in \[2, 10000\]"):
        traversal_codes(np.zeros(3), np.ones(3), [0], steps=1)
    with pytest.raises(DataError, match="one length"):
        traversal_codes(np.zeros(3), np.ones(2), [0])


# ---------------------------------------------------------------------------- arithmetic
def test_code_arithmetic_means_of_groups():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])  # mean (2, 3)
    b = np.array([0.5, 0.5])
    c = np.array([[0.0, 1.0], [0.0, 3.0], [3.0, 2.0]])  # mean (1, 2)
    np.testing.assert_allclose(code_arithmetic(a, b, c), [2.5, 4.5], rtol=0, atol=1e-15)
    out = code_arithmetic(torch.tensor(a, dtype=torch.float32), torch.tensor(b), torch.tensor(c))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), [2.5, 4.5], atol=1e-6)
    with pytest.raises(DataError, match="different lengths"):
        code_arithmetic(np.zeros(2), np.zeros(3), np.zeros(2))
    with pytest.raises(DataError, match="must be a code"):
        code_arithmetic(np.zeros((1, 2, 2)), np.zeros(2), np.zeros(2))

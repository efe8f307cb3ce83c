"""The QNR family against values computed by hand on small arrays, and on a simulated pair."""
import math

import pytest
import torch

from dhif.baselines import Observation
from dhif.data import degrade, spectral_response, to_msi
from dhif.data.synthetic import synthetic_scene
from dhif.quality import cayley_dickson_table, d_lambda, d_s, full_resolution_quality, q2n, q_blocks


def _q_by_hand(a: list, b: list) -> float:
    """Wang-Bovik Q of two lists of pixel values, written out."""
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    va = sum((x - ma) ** 2 for x in a) / n
    vb = sum((y - mb) ** 2 for y in b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b)) / n
    return 4 * cov * ma * mb / ((va + vb) * (ma ** 2 + mb ** 2))


def _image(*bands) -> torch.Tensor:
    """(C, 2, 2) from lists of 4 values each, row-major."""
    return torch.tensor(bands, dtype=torch.float64).reshape(len(bands), 2, 2)


def test_q_of_two_small_images_is_the_formula():
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 3.0, 5.0]
    assert q_blocks(_image(a), _image(b), block=2)[0, 0].item() == pytest.approx(_q_by_hand(a, b), rel=1e-12)
    # 4 blocks of 2 x 2 in a 4 x 4 image: the mean of the blocks' Q.
    big = torch.tensor([[1, 2, 5, 1], [3, 4, 2, 2], [7, 1, 1, 1], [2, 2, 1, 3]], dtype=torch.float64)[None]
    other = big.flip(-1) + 1
    blocks = [(slice(0, 2), slice(0, 2)), (slice(0, 2), slice(2, 4)), (slice(2, 4), slice(0, 2)),
              (slice(2, 4), slice(2, 4))]
    by_hand = sum(_q_by_hand(big[0][r, c].flatten().tolist(), other[0][r, c].flatten().tolist())
                  for r, c in blocks) / 4
    assert q_blocks(big, other, block=2)[0, 0].item() == pytest.approx(by_hand, rel=1e-12)


def test_q_of_flat_blocks_is_its_limit():
    flat, double = _image([2.0] * 4), _image([4.0] * 4)
    assert q_blocks(flat, flat, 2).item() == 1.0
    assert q_blocks(flat, double, 2).item() == pytest.approx(2 * 2 * 4 / (4 + 16))
    assert q_blocks(_image([0.0] * 4), _image([0.0] * 4), 2).item() == 1.0


def test_d_lambda_and_d_s_by_hand():
    lr = _image([1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 4.0, 4.0])
    fused = _image([1.0, 2.0, 3.0, 5.0], [2.0, 2.0, 4.0, 4.0])
    msi, low = _image([1.0, 3.0, 3.0, 4.0]), _image([2.0, 2.0, 3.0, 4.0])
    q_fused, q_lr = _q_by_hand([1, 2, 3, 5], [2, 2, 4, 4]), _q_by_hand([1, 2, 3, 4], [2, 1, 4, 4])
    assert d_lambda(fused, lr, scale=1) == pytest.approx(abs(q_fused - q_lr), rel=1e-12)  # both ordered pairs
    by_hand = (abs(_q_by_hand([1, 2, 3, 5], [1, 3, 3, 4]) - _q_by_hand([1, 2, 3, 4], [2, 2, 3, 4]))
               + abs(_q_by_hand([2, 2, 4, 4], [1, 3, 3, 4]) - _q_by_hand([2, 1, 4, 4], [2, 2, 3, 4]))) / 2
    assert d_s(fused, msi, lr, low, scale=1) == pytest.approx(by_hand, rel=1e-12)


def _hypercomplex_q(z: list, v: list, multiply, conjugate) -> float:
    """Q2n of pixel lists of hypercomplex numbers (tuples), with the algebra's product."""
    n = len(z)
    mean = [sum(p[k] for p in z) / n for k in range(len(z[0]))]
    mean_v = [sum(p[k] for p in v) / n for k in range(len(v[0]))]
    centred_z = [[p[k] - mean[k] for k in range(len(p))] for p in z]
    centred_v = [[p[k] - mean_v[k] for k in range(len(p))] for p in v]
    products = [multiply(a, conjugate(b)) for a, b in zip(centred_z, centred_v)]
    cov = [sum(p[k] for p in products) / n for k in range(len(products[0]))]
    norm = lambda q: math.sqrt(sum(c * c for c in q))  # noqa: E731
    var_z = sum(norm(p) ** 2 for p in centred_z) / n
    var_v = sum(norm(p) ** 2 for p in centred_v) / n
    return 4 * norm(cov) * norm(mean) * norm(mean_v) / ((var_z + var_v) * (norm(mean) ** 2 + norm(mean_v) ** 2))


def _hamilton(p, q):
    a1, b1, c1, d1 = p
    a2, b2, c2, d2 = q
    return (a1 * a2 - b1 * b2 - c1 * c2 - d1 * d2, a1 * b2 + b1 * a2 + c1 * d2 - d1 * c2,
            a1 * c2 - b1 * d2 + c1 * a2 + d1 * b2, a1 * d2 + b1 * c2 - c1 * b2 + d1 * a2)


def test_q2n_of_two_bands_is_q_of_complex_numbers_and_of_four_of_quaternions():
    generator = torch.Generator().manual_seed(0)
    for bands, multiply, conjugate in (
            (2, lambda p, q: ((complex(*p) * complex(*q)).real, (complex(*p) * complex(*q)).imag),
             lambda q: (q[0], -q[1])),
            (4, _hamilton, lambda q: (q[0], -q[1], -q[2], -q[3]))):
        x = torch.rand(bands, 3, 3, generator=generator, dtype=torch.float64) + 0.5
        y = x + 0.3 * torch.rand(bands, 3, 3, generator=generator, dtype=torch.float64)
        pixels = lambda image: [tuple(image[:, i, j].tolist()) for i in range(3) for j in range(3)]  # noqa: E731
        assert q2n(x, y, block=3) == pytest.approx(_hypercomplex_q(pixels(x), pixels(y), multiply, conjugate),
                                                   rel=1e-12), bands


def test_cayley_dickson_tables_are_the_algebras():
    sign, index = cayley_dickson_table(8)
    basis = torch.eye(4, dtype=torch.float64)
    for i in range(4):
        for j in range(4):  # the quaternion corner against Hamilton's product
            expected = torch.tensor(_hamilton(basis[i].tolist(), basis[j].tolist()), dtype=torch.float64)
            got = torch.zeros(4, dtype=torch.float64)
            got[index[i, j]] = sign[i, j]
            assert torch.equal(got, expected), (i, j)
    # The octonions are a composition algebra: |xy| = |x||y|.
    x, y = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    product = torch.zeros(8, dtype=torch.float64).index_add_(0, index.flatten(), (sign * x[:, None] * y).flatten())
    assert product.norm().item() == pytest.approx((x.norm() * y.norm()).item(), rel=1e-12)


def test_the_truth_of_a_simulated_pair_scores_near_perfect_and_bicubic_does_not():
    scale = 4
    cube = synthetic_scene(64, seed=2).double()
    srf = spectral_response("nikon_d700").double()
    lr, msi = degrade(cube, scale), to_msi(cube, srf)
    observation = Observation(scale)
    truth = full_resolution_quality(cube, lr, msi, observation, srf)
    assert truth["lr_consistency_psnr"] > 200 and truth["msi_consistency_psnr"] > 200
    bicubic = torch.nn.functional.interpolate(lr[None], scale_factor=scale, mode="bicubic", align_corners=False)[0]
    blurry = full_resolution_quality(bicubic, lr, msi, observation, srf)
    assert blurry["msi_consistency_psnr"] < 40 and blurry["d_s"] > truth["d_s"]
    for scores in (truth, blurry):
        assert 0 <= scores["qnr"] <= 1 and scores["qnr"] == pytest.approx((1 - scores["d_lambda"]) * (
            1 - scores["d_s"]))
        assert scores["hqnr"] == pytest.approx((1 - scores["d_lambda_khan"]) * (1 - scores["d_s"]))
    assert truth["d_lambda_khan"] < 1e-9 < blurry["d_lambda_khan"]

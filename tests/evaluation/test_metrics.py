import numpy as np
import pytest
from scipy import linalg

from spade_tf.evaluation import metrics
from spade_tf.evaluation.metrics import ConfusionMatrix


# --- FID -------------------------------------------------------------------
def test_fid_of_identical_sets_is_zero(rng):
    x = rng.normal(size=(300, 16))
    assert abs(metrics.fid(x, x)) < 1e-6


def test_frechet_distance_of_diagonal_gaussians_matches_closed_form(rng):
    # Diagonal covariances commute, so (S1 S2)^1/2 is the elementwise sqrt.
    d = 8
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.5, 2.0, size=d), rng.uniform(0.5, 2.0, size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = metrics.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_frechet_distance_of_full_covariances_matches_closed_form(rng):
    # S2 = S1^2 shares S1's eigenvectors: (S1 S2)^1/2 = S1^(3/2), computed
    # here from the eigendecomposition, independently of scipy.linalg.sqrtm.
    d = 6
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    lam = rng.uniform(0.3, 2.0, size=d)
    s1 = q @ np.diag(lam) @ q.T
    s2 = q @ np.diag(lam**2) @ q.T
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(lam + lam**2 - 2 * lam**1.5)
    np.testing.assert_allclose(metrics.frechet_distance(mu1, s1, mu2, s2), expected, rtol=1e-8)


def test_fid_of_samples_of_shifted_gaussians_approaches_closed_form():
    rng = np.random.default_rng(1)
    d, n = 4, 200_000
    s1, s2 = np.array([1.0, 2.0, 0.5, 1.5]), np.array([2.0, 1.0, 1.0, 0.5])
    shift = np.array([1.0, -2.0, 0.5, 0.0])
    a = rng.normal(size=(n, d)) * np.sqrt(s1)
    b = rng.normal(size=(n, d)) * np.sqrt(s2) + shift
    expected = shift @ shift + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    np.testing.assert_allclose(metrics.fid(a, b), expected, rtol=0.02)


def test_feature_statistics_are_mean_and_unbiased_covariance(rng):
    x = rng.normal(size=(50, 5))
    mu, sigma = metrics.feature_statistics(x)
    np.testing.assert_allclose(mu, x.mean(0))
    centred = x - x.mean(0)
    np.testing.assert_allclose(sigma, centred.T @ centred / 49)


def test_fid_with_fewer_samples_than_dimensions_equals_the_sqrtm_formula(rng):
    # Singular covariances (rank 9 and 11 in 32 dims): fid() takes the
    # sample-space path; frechet_distance() the D x D sqrtm (and eps retry).
    a, b = rng.normal(size=(10, 32)), rng.normal(size=(12, 32)) * 2.0 + 1.0
    value = metrics.fid(a, b)
    reference = metrics.frechet_distance(*metrics.feature_statistics(a), *metrics.feature_statistics(b))
    assert np.isfinite(value) and value > 0
    np.testing.assert_allclose(value, reference, rtol=1e-6)
    assert abs(metrics.fid(a, a)) < 1e-9


def test_frechet_distance_retries_with_offset_when_sqrtm_is_not_finite(monkeypatch):
    calls = []
    real = linalg.sqrtm

    def flaky(m):
        calls.append(m.copy())
        return np.full_like(m, np.nan) if len(calls) == 1 else real(m)

    monkeypatch.setattr(metrics.linalg, "sqrtm", flaky)
    s = np.eye(3)
    assert metrics.frechet_distance(np.zeros(3), s, np.zeros(3), s, eps=1e-6) == pytest.approx(0, abs=1e-5)
    np.testing.assert_allclose(calls[1], (s + 1e-6 * np.eye(3)) @ (s + 1e-6 * np.eye(3)))


def test_frechet_distance_raises_on_large_imaginary_part():
    # Not a covariance: the product's square root has an imaginary diagonal.
    with pytest.raises(ValueError, match="imaginary component"):
        metrics.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.diag([-1.0, 1.0]))


def test_fid_rejects_bad_shapes(rng):
    with pytest.raises(ValueError, match="different widths"):
        metrics.fid(rng.normal(size=(5, 3)), rng.normal(size=(5, 4)))
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        metrics.fid(rng.normal(size=5), rng.normal(size=5))
    with pytest.raises(ValueError, match="at least 2"):
        metrics.fid(rng.normal(size=(1, 3)), rng.normal(size=(5, 3)))


# --- KID -------------------------------------------------------------------
def _mmd2_reference(x, y):
    """Unbiased polynomial-kernel MMD^2 written out with loops over pairs."""
    d = x.shape[1]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_polynomial_mmd2_matches_pairwise_formula(rng):
    x, y = rng.normal(size=(12, 5)), rng.normal(size=(9, 5)) + 0.5
    np.testing.assert_allclose(metrics.polynomial_mmd2(x, y), _mmd2_reference(x, y), rtol=1e-10)


def test_kid_with_one_full_subset_is_the_mmd_of_the_sets(rng):
    # A full-size subset is a permutation, which the MMD does not see.
    x, y = rng.normal(size=(20, 6)), rng.normal(size=(20, 6)) + 1.0
    mean, std = metrics.kid(x, y, subsets=1, subset_size=1000)
    np.testing.assert_allclose(mean, _mmd2_reference(x, y), rtol=1e-10)
    assert std == 0.0


def test_kid_of_identical_distributions_is_near_zero_and_of_shifted_is_not():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    same, same_std = metrics.kid(a, b, subsets=20, subset_size=200, seed=0)
    shifted, _ = metrics.kid(a, b + 1.0, subsets=20, subset_size=200, seed=0)
    assert abs(same) < 3 * same_std + 1e-3
    assert shifted > 50 * max(abs(same), same_std)


def test_kid_is_deterministic_for_a_seed(rng):
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(60, 4))
    assert metrics.kid(a, b, 5, 10, seed=3) == metrics.kid(a, b, 5, 10, seed=3)
    assert metrics.kid(a, b, 5, 10, seed=3) != metrics.kid(a, b, 5, 10, seed=4)


# --- Segmentation ----------------------------------------------------------
def test_confusion_matrix_miou_and_accuracy_by_hand():
    # 3 classes; 255 and the out-of-range id 7 in the labels are don't care.
    labels = np.array([[0, 0, 1, 1],
                       [2, 2, 255, 7]])
    preds = np.array([[0, 1, 1, 1],
                      [2, 0, 2, 9]])   # 9 sits on an ignored pixel: not counted, no error
    cm = ConfusionMatrix(3)
    cm.update(labels[:1], preds[:1])  # accumulates over batches
    cm.update(labels[1:], preds[1:])
    expected = np.array([[1, 1, 0],    # gt 0: one right, one called 1
                         [0, 2, 0],    # gt 1: both right
                         [1, 0, 1]])   # gt 2: one called 0, one right
    np.testing.assert_array_equal(cm.matrix, expected)
    # IoU: class 0: 1 / (2 + 2 - 1) = 1/3; class 1: 2 / (2 + 3 - 2) = 2/3; class 2: 1 / (2 + 1 - 1) = 1/2
    np.testing.assert_allclose(cm.iou(), [1 / 3, 2 / 3, 1 / 2])
    assert metrics.mean_iou(cm) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert metrics.pixel_accuracy(cm) == pytest.approx(4 / 6)


def test_classes_absent_from_labels_and_predictions_leave_the_mean():
    cm = ConfusionMatrix(5)
    cm.update(np.array([0, 0, 1]), np.array([0, 1, 1]))
    iou = cm.iou()
    assert np.isnan(iou[2:]).all()
    assert metrics.mean_iou(cm) == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_predicted_class_absent_from_labels_counts_in_the_mean():
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 0]), np.array([0, 2]))  # class 2 only predicted: IoU 0
    assert metrics.mean_iou(cm) == pytest.approx((1 / 2 + 0) / 2)


def test_confusion_matrix_rejects_out_of_range_predictions_and_bad_shapes():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"predicted ids \[5\]"):
        cm.update(np.array([0, 1]), np.array([0, 5]))
    with pytest.raises(ValueError, match="differ"):
        cm.update(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="empty"):
        metrics.mean_iou(ConfusionMatrix(3))
    with pytest.raises(ValueError, match="num_classes"):
        ConfusionMatrix(0)

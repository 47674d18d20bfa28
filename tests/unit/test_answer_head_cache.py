"""The answer model's head kept on disk by a hash of its training data: the next process takes the same head
without a fit, other data get a fit of their own, and a damaged file is fitted again."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bot.decision.answer_score import fit_answer_model


def _entries(seed: int) -> tuple[dict[int, tuple[str, np.ndarray]], np.ndarray]:
    rng = np.random.default_rng(seed)
    unit = lambda rows: rows / np.linalg.norm(rows, axis=1, keepdims=True)  # noqa: E731
    entries = {i: (f"entry-{i}", unit(rng.standard_normal((4, 16)))) for i in (1, 2, 3)}
    return entries, unit(rng.standard_normal((6, 16)))


def test_a_cached_head_is_the_fitted_one(tmp_path: Path) -> None:
    entries, oos = _entries(1)
    first = fit_answer_model(entries, oos, head_cache=tmp_path)
    files = list(tmp_path.glob("intent-head-*.npz"))
    assert len(files) == 1
    again = fit_answer_model(entries, oos, head_cache=tmp_path)
    assert again.head.labels == first.head.labels
    np.testing.assert_array_equal(again.head.weights, first.head.weights)
    uncached = fit_answer_model(entries, oos)
    np.testing.assert_allclose(uncached.head.weights, first.head.weights, atol=1e-9)
    other_entries, other_oos = _entries(2)
    fit_answer_model(other_entries, other_oos, head_cache=tmp_path)
    assert len(list(tmp_path.glob("intent-head-*.npz"))) == 2


def test_a_damaged_cached_head_is_fitted_again(tmp_path: Path) -> None:
    entries, oos = _entries(3)
    fitted = fit_answer_model(entries, oos, head_cache=tmp_path)
    (path,) = tmp_path.glob("intent-head-*.npz")
    path.write_bytes(b"damaged")
    again = fit_answer_model(entries, oos, head_cache=tmp_path)
    np.testing.assert_allclose(again.head.weights, fitted.head.weights, atol=1e-9)
    assert fit_answer_model(entries, oos, head_cache=tmp_path).head.labels == fitted.head.labels

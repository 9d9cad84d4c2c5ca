"""Batch summaries (engine.dataset.reduce): folding them in any grouping gives one pass's answer.

The local scan folds one summary per batch; a Ray worker combines the batches of its shard
first. The hits must be identical (ties go to the lower image id), the moments equal to
float64 rounding, and RunningMoments.update must stay batch_moments + merge exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.dataset.reduce import BatchSummary, combine, summarize
from engine.dataset.running import RunningTopK
from engine.dataset.stats import RunningMoments, batch_moments

N, C, K, G = 95, 7, 3, 4


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    mx = rng.random((N, C)).astype(np.float32)
    mx[[5, 9], 2] = 2.0  # a tie at the top, across batches: the lower id must win everywhere
    mx[40, 1] = np.nan  # a NaN peak ranks last, as in the running top-k
    pos = rng.integers(0, 50, (N, C))
    mean = rng.random((N, C)).astype(np.float32)
    labels = rng.integers(-1, G, N)
    return mx, pos, mean, labels


def _parts(batch, size: int) -> list[BatchSummary]:
    mx, pos, mean, labels = batch
    out = []
    for s in range(0, N, size):
        ids = np.arange(s, min(s + size, N))
        out.append(summarize(s, int(ids[-1]) + 1, ids, labels[ids], (mx[ids], pos[ids], mean[ids]), G, K))
    return out


@pytest.mark.parametrize("size", [1, 10, 32])
def test_combined_shards_equal_one_pass(batch, size):
    mx, pos, mean, labels = batch
    one = summarize(0, N, np.arange(N), labels, (mx, pos, mean), G, K)
    shard = combine(_parts(batch, size), K)
    for name in ("top_ids", "top_values", "top_pos", "ids", "labels", "strongest_channel"):
        np.testing.assert_array_equal(getattr(shard, name), getattr(one, name), err_msg=name)
    assert (shard.first, shard.end) == (0, N)
    assert list(one.top_ids[2, :2]) == [5, 9]
    for stat in ("mean", "max"):
        np.testing.assert_array_equal(shard.moments[stat][0], one.moments[stat][0])
        np.testing.assert_allclose(shard.moments[stat][1], one.moments[stat][1], rtol=1e-12)
        np.testing.assert_allclose(shard.moments[stat][2], one.moments[stat][2], rtol=1e-9)
    # the last group holds every image, the class groups only the labelled ones
    assert shard.moments["mean"][0][G] == N and shard.moments["mean"][0][:G].sum() == (labels >= 0).sum()


def test_columns_round_trip(batch):
    part = _parts(batch, 10)[3]
    row = part.to_columns()
    assert all(v.shape[0] == 1 for v in row.values())
    back = BatchSummary.from_columns(row)
    for name in ("ids", "labels", "top_ids", "top_values", "strongest_value"):
        np.testing.assert_array_equal(getattr(back, name), getattr(part, name))
    assert back.skipped == part.skipped and (back.first, back.end) == (part.first, part.end)


def test_an_empty_batch_summarizes_to_nothing():
    empty = np.zeros((0, C), np.float32)
    s = summarize(
        10,
        14,
        np.zeros(0, np.int64),
        np.zeros(0),
        (empty, empty.astype(np.int64), empty),
        G,
        K,
        ((10, "bad"),),
    )
    assert (s.top_ids == -1).all() and s.moments["max"][0].sum() == 0 and s.skipped == ((10, "bad"),)


def test_moments_update_is_batch_moments_then_merge(batch):
    mx, _, _, labels = batch
    known = labels >= 0
    a, b = RunningMoments(G, C), RunningMoments(G, C)
    for s in range(0, N, 20):
        sl = slice(s, s + 20)
        a.update(labels[sl][known[sl]], mx[sl][known[sl]])
        b.merge(*batch_moments(labels[sl][known[sl]], mx[sl][known[sl]], G))
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.m2, b.m2)
    values = mx[known].astype(np.float64)
    for g in range(G):  # the NaN peak of image 40 stays in its own class
        rows = values[labels[known] == g]
        np.testing.assert_allclose(a.mean[g], rows.mean(0), rtol=1e-12)
        np.testing.assert_allclose(a.std()[g], rows.std(0), rtol=1e-9)
    assert np.isnan(a.mean[labels[40]]).sum() == 1 and np.isfinite(np.delete(a.mean, labels[40], 0)).all()


def test_topk_merge_of_two_lists_equals_one_update(batch):
    mx, pos, _, _ = batch
    whole, left, right = RunningTopK(C, K), RunningTopK(C, K), RunningTopK(C, K)
    whole.update(np.arange(N), mx, pos)
    left.update(np.arange(50), mx[:50], pos[:50])
    right.update(np.arange(50, N), mx[50:], pos[50:])
    right.merge(left.values, left.ids, left.pos)  # in the other order, too
    np.testing.assert_array_equal(right.ids, whole.ids)
    np.testing.assert_array_equal(right.values, whole.values)
    np.testing.assert_array_equal(right.pos, whole.pos)


def test_shards_stay_few_for_the_driver():
    from engine.dataset.cluster import shard_batches

    assert shard_batches(31, 2, 10, 4) == 4  # small sets: 8 shards per worker, at least 8 images per group
    assert shard_batches(5005, 1, 256, 1001) == 32  # ImageNet, one worker: 8,192-image shards
    assert shard_batches(5005, 64, 256, 1001) == 32  # 64 workers: the classes keep shards large
    assert shard_batches(5005, 64, 256, 11) == 10  # ten classes: about 8 shards per worker
    assert shard_batches(3, 8, 256, 1001) == 3  # never more than the scan has

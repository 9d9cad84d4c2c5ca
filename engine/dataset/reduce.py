"""What one batch of a scan reduces to, wherever it ran: the summary the driver folds in.

A batch of images gives, per image, the peak, its position and the spatial mean of every
channel: (B, C) arrays that a 1.28 M image scan cannot keep. summarize() keeps only what the
scan result needs from them: the batch's own top-k per channel, each image's strongest channel
and label, and per-class moments of the two statistics. The local scanner and every Ray worker
call the same function, and the driver folds summaries in batch order with RunningTopK.merge
and RunningMoments.merge, so a scan gives the same answer wherever its batches ran.

Summaries travel as flat dicts of numpy arrays (to_columns / from_columns): the form Ray Data
moves between processes without pickling our own classes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from engine.dataset.running import RunningTopK
from engine.dataset.stats import STATS, RunningMoments, batch_moments

__all__ = ["BatchSummary", "combine", "summarize"]


@dataclass(frozen=True, eq=False)
class BatchSummary:
    """One batch of image ids [first, end), reduced.

    ids/labels/strongest_*: the images that loaded (B,); top_*: the batch's top-k per channel
    (C, k), -1 ids in empty slots; moments[stat] = (count (G,), mean (G, C), M2 (G, C)) with
    the last group holding every image; skipped: (id, message) of images that did not load.
    """

    first: int
    end: int
    ids: np.ndarray
    labels: np.ndarray
    strongest_channel: np.ndarray
    strongest_value: np.ndarray
    top_values: np.ndarray
    top_ids: np.ndarray
    top_pos: np.ndarray
    moments: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    skipped: tuple[tuple[int, str], ...] = ()

    def to_columns(self) -> dict[str, np.ndarray]:
        """One row of plain arrays (a leading axis of 1), with the per-image arrays padded to `pad`."""
        row: dict[str, np.ndarray] = {
            "range": np.array([[self.first, self.end]], np.int64),
            "n": np.array([len(self.ids)], np.int64),
            "skipped": np.array([json.dumps([[int(i), str(m)] for i, m in self.skipped])]),
        }
        width = self.end - self.first
        for name, fill in (
            ("ids", -1),
            ("labels", -1),
            ("strongest_channel", -1),
            ("strongest_value", np.nan),
        ):
            a = np.asarray(getattr(self, name))
            padded = np.full(width, fill, a.dtype)
            padded[: len(a)] = a
            row[name] = padded[None]
        for name in ("top_values", "top_ids", "top_pos"):
            row[name] = np.asarray(getattr(self, name))[None]
        for stat, (count, mean, m2) in self.moments.items():
            row[f"{stat}_count"], row[f"{stat}_mean"], row[f"{stat}_m2"] = count[None], mean[None], m2[None]
        return row

    @classmethod
    def from_columns(cls, batch: dict[str, np.ndarray], i: int = 0) -> BatchSummary:
        """Row i of a batch of columns written by to_columns (Ray Data may stack several rows)."""
        n = int(batch["n"][i])
        first, end = (int(v) for v in batch["range"][i])
        skipped = tuple((int(a), str(b)) for a, b in json.loads(str(batch["skipped"][i])))
        return cls(
            first=first,
            end=end,
            ids=np.asarray(batch["ids"][i][:n], np.int64),
            labels=np.asarray(batch["labels"][i][:n], np.int64),
            strongest_channel=np.asarray(batch["strongest_channel"][i][:n], np.int32),
            strongest_value=np.asarray(batch["strongest_value"][i][:n], np.float32),
            top_values=np.asarray(batch["top_values"][i], np.float32),
            top_ids=np.asarray(batch["top_ids"][i], np.int64),
            top_pos=np.asarray(batch["top_pos"][i], np.int64),
            moments={
                s: (
                    np.asarray(batch[f"{s}_count"][i], np.int64),
                    np.asarray(batch[f"{s}_mean"][i], np.float64),
                    np.asarray(batch[f"{s}_m2"][i], np.float64),
                )
                for s in STATS
            },
            skipped=skipped,
        )


def summarize(
    first: int,
    end: int,
    ids: np.ndarray,
    labels: np.ndarray,
    peaks: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_classes: int,
    k: int,
    skipped: tuple[tuple[int, str], ...] = (),
) -> BatchSummary:
    """Reduce a batch: ids (B,) of the images that loaded, their labels (B,) and the model's
    peaks = (max (B, C), argmax flat position (B, C), spatial mean (B, C)); B may be 0."""
    mx, pos, mean = (np.asarray(a) for a in peaks)
    ids = np.asarray(ids, np.int64).reshape(-1)
    units = int(mx.shape[1])
    top = RunningTopK(units, k)
    top.update(ids, mx, pos)
    labels = np.asarray(labels, np.int64).reshape(-1)
    labels = np.where((labels >= 0) & (labels < n_classes), labels, -1)
    if ids.size:
        best = np.argmax(np.nan_to_num(mx, nan=-np.inf), axis=1)
        strongest_value = np.asarray(mx, np.float32)[np.arange(ids.size), best]
    else:
        best, strongest_value = np.zeros(0, np.int32), np.zeros(0, np.float32)
    groups = n_classes + 1  # the last group holds every image
    moments = {}
    known = labels >= 0
    for stat, values in (("mean", mean), ("max", mx)):
        if not ids.size:
            moments[stat] = (np.zeros(groups, np.int64), np.zeros((groups, units)), np.zeros((groups, units)))
            continue
        count, avg, m2 = batch_moments(np.full(ids.size, n_classes, np.int64), values, groups)
        if known.any():
            count_k, avg_k, m2_k = batch_moments(labels[known], values[known], groups)
            count, avg, m2 = count + count_k, avg + avg_k, m2 + m2_k  # disjoint groups: exact
        moments[stat] = (count, avg, m2)
    return BatchSummary(
        first=int(first),
        end=int(end),
        ids=ids,
        labels=labels,
        strongest_channel=best.astype(np.int32),
        strongest_value=strongest_value,
        top_values=top.values,
        top_ids=top.ids,
        top_pos=top.pos,
        moments=moments,
        skipped=tuple(skipped),
    )


def combine(parts: list[BatchSummary], k: int) -> BatchSummary:
    """Consecutive summaries as one (a Ray worker's shard of several batches, so the driver
    merges one summary per shard). The hits are exactly those of folding the parts one by one;
    the moments are merged in the same order, so they agree to float64 rounding."""
    if len(parts) == 1:
        return parts[0]
    units = parts[0].top_values.shape[0]
    groups = len(parts[0].moments[STATS[0]][0])
    top = RunningTopK(units, k)
    moments = {stat: RunningMoments(groups, units) for stat in STATS}
    for part in parts:
        top.merge(part.top_values, part.top_ids, part.top_pos)
        for stat in STATS:
            moments[stat].merge(*part.moments[stat])
    joined = {name: np.concatenate([getattr(part, name) for part in parts]) for name in _PER_IMAGE}
    return BatchSummary(
        first=parts[0].first,
        end=parts[-1].end,
        **joined,
        top_values=top.values,
        top_ids=top.ids,
        top_pos=top.pos,
        moments={stat: (m.count, m.mean, m.m2) for stat, m in moments.items()},
        skipped=tuple(item for part in parts for item in part.skipped),
    )


_PER_IMAGE = ("ids", "labels", "strongest_channel", "strongest_value")

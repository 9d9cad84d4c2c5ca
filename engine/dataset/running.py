"""The running top-k of a scan and the crops under a hit's receptive field.

RunningTopK keeps, for every channel at once, the k best (value, image id, flat position)
in arrays of shape (channels, k); each batch is merged in and the k best kept, so memory
does not grow with the dataset. Ties are broken by the lower image id, so the result does
not depend on batch size or on where a scan was resumed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.common import unit_to_uint8 as as_uint8
from engine.errors import EngineError

__all__ = ["PAD_VALUE", "RunningTopK", "as_uint8", "crop_box", "extract_crop"]

PAD_VALUE = 128  # uint8 grey where a receptive field reaches past the image


class RunningTopK:
    """For each of C channels the k best (value, image id, flat position), sorted by value desc, id asc.

    Empty slots hold value -inf and id -1.
    """

    def __init__(self, channels: int, k: int) -> None:
        if k < 1:
            raise EngineError("k must be at least 1")
        self.k = int(k)
        self.values = np.full((channels, self.k), -np.inf, np.float32)
        self.ids = np.full((channels, self.k), -1, np.int64)
        self.pos = np.zeros((channels, self.k), np.int64)

    def update(self, ids: np.ndarray, values: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Merge a batch: ids (B,), values (B, C) per-image peaks, pos (B, C) their flat positions.

        Returns (order, fresh): order (C, k) says where each kept entry came from (< k: an old
        slot, >= k: batch row order - k), fresh (C, k) marks entries new in this batch.
        """
        ids = np.asarray(ids, np.int64).reshape(-1)
        b = ids.size
        c = self.values.shape[0]
        vals = np.asarray(values, np.float32).reshape(b, c).T
        return self.merge(vals, np.broadcast_to(ids, (c, b)), np.asarray(pos, np.int64).reshape(b, c).T)

    def merge(self, values: np.ndarray, ids: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Merge per-channel candidates: values, ids, pos (C, n) (another top-k, or a batch's rows).

        Returns (order, fresh) as update() does: order (C, k) < k is an old slot, >= k is
        candidate column order - k. Merging top-k lists of disjoint image sets in any grouping
        gives the same result as one update over all images (ties go to the lower id).
        """
        c = self.values.shape[0]
        n = np.shape(values)[1] if np.ndim(values) == 2 else 0
        if n == 0:
            order = np.broadcast_to(np.arange(self.k), (c, self.k)).copy()
            return order, np.zeros((c, self.k), bool)
        vals = np.nan_to_num(np.asarray(values, np.float32), nan=-np.inf)
        cand_v = np.concatenate([self.values, vals], axis=1)
        cand_i = np.concatenate([self.ids, np.asarray(ids, np.int64)], axis=1)
        cand_p = np.concatenate([self.pos, np.asarray(pos, np.int64)], axis=1)
        id_key = np.where(cand_i < 0, np.iinfo(np.int64).max, cand_i)
        order = np.lexsort((id_key, -cand_v.astype(np.float64)), axis=-1)[:, : self.k]
        self.values = np.take_along_axis(cand_v, order, axis=1)
        self.ids = np.take_along_axis(cand_i, order, axis=1)
        self.pos = np.take_along_axis(cand_p, order, axis=1)
        return order, order >= self.k


def crop_box(rf: Any, y: int, x: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The receptive-field box (top, left, bottom, right) of cell (y, x), clipped to an (H, W) image.

    rf None (a dense unit) means the whole image.
    """
    if rf is None:
        return 0, 0, int(shape[0]), int(shape[1])
    return rf.box_clipped(int(y), int(x), (int(shape[0]), int(shape[1])))


def extract_crop(image: np.ndarray, rf: Any, y: int, x: int, pad: int = PAD_VALUE) -> np.ndarray:
    """uint8 (ry, rx, C): the input pixels under cell (y, x)'s receptive field, grey past the image.

    image is the model-fitted image (H, W, C), float in [0, 1] or uint8. For rf None (a dense
    unit) the whole image.
    """
    img = as_uint8(image)
    if rf is None:
        return np.array(img, copy=True)
    hgt, wid = img.shape[:2]
    top, left, bottom, right = rf.box(int(y), int(x))
    out = np.full((rf.size[0], rf.size[1], img.shape[2]), pad, np.uint8)
    t, l_, b, r = crop_box(rf, y, x, (hgt, wid))
    if b > t and r > l_:
        out[t - top : b - top, l_ - left : r - left] = img[t:b, l_:r]
    return out

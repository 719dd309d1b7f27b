"""Classical mask tracker behind the CPU default propagator (:class:`~rewards.vision.flow.FlowPropagator`).

Optical-flow warping alone lets masks trail behind moving objects (background pixels
have zero flow and keep the old label), leaves residue where objects leave the frame
and loses fast, textureless objects. :class:`MaskTracker` carries the mask from frame to
frame (both directions from the keyframe) and re-decides every pixel near the object
with four cues, summed as log-odds (foreground iff the sum is > 0):

* **colour**: object vs background colour histograms learnt on the keyframe (the
  object's mask vs the rest of the frame; the background model is mixed with a
  uniform distribution, so colours never seen on the keyframe lean to background);
* **spatial prior**: the previous mask moved to the current frame, blurred by an
  uncertainty proportional to the object's size; positive inside (``prior_inside``),
  strongly negative away from it (``prior_outside``). The moved mask is the union of
  (a) the flow-warped previous mask and (b) the previous mask translated to where the
  colour model matches it best (exhaustive search around the flow's prediction, which
  catches motions the flow underestimates);
* **warp consistency**: where the flow-warped previous frame matches the current frame
  photometrically, the warped label is trusted (kept outright where the match is
  close, ``warp_lock``, else weighted by ``warp_weight``); where it does not
  (disocclusion, the trail behind a moving object, the object's leading edge) colour
  and prior decide. A static video therefore keeps its mask exactly;
* **occlusion memory**: when the mask shrinks below ``full_ratio`` of the object's
  largest area (occluded, or leaving the frame) the last full mask, moved with the
  last measured velocity, is added to the prior for up to ``ghost_frames`` frames, so
  the object is found again when it reappears close to where it should be.

The result keeps only connected components that overlap the prior; an object that
leaves the frame or stays hidden longer than the memory gives empty masks from then on.

Nothing here knows about any data set: the inputs are the frames, the keyframe index
and the keyframe mask. All constants are fields of :class:`TrackerParams`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import cv2
import numpy as np

#: ``flow(gray_cur, gray_prev) -> H x W x 2 float32``: for every pixel of the current frame the
#: displacement to its match in the previous frame (backward flow).
FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class TrackerParams:
    """Constants of :class:`MaskTracker` (pixel values are at the tracker's working resolution).

    Defaults were chosen on the project's synthetic videos (default generator settings, GT
    keyframe masks, mostly generator seeds 2 and 3) and kept generic: sizes are relative to
    the object where that makes sense.
    """

    # Colour model: histogram bins per RGB channel (bins**3 cells; a power of two, 2..64).
    colour_bins: int = 16
    # Gaussian smoothing of the colour histograms, in bins (tolerance to noise / small colour shifts).
    colour_smoothing: float = 1.0
    # Weight of a uniform distribution mixed into the background histogram, so colours seen on neither
    # side of the keyframe (e.g. a new occluder) get negative log-odds and lean to background (0 disables).
    background_uniform: float = 0.2
    # Colour log-odds are clipped to +-log_odds_clip (one colour never outweighs the other cues entirely).
    log_odds_clip: float = 6.0
    # Spatial prior: uncertainty sigma = max(prior_sigma_min, prior_sigma * sqrt(object area)) pixels.
    prior_sigma: float = 0.1
    prior_sigma_min: float = 2.0
    # Log-odds added well inside the moved mask / subtracted well outside it.
    prior_inside: float = 3.0
    prior_outside: float = 8.0
    # Pixels farther than search_reach * sigma from the moved mask stay background.
    search_reach: float = 3.0
    # Warp consistency c = exp(-d^2 / (2 warp_tau^2)), d the RGB distance (0..255 units) between the
    # current frame and the warped previous frame. Pixels with c >= warp_lock keep the warped label
    # outright (and are left alone by the cleanup; a static video keeps its mask exactly); below it
    # the warped label weighs warp_weight * c in the log-odds. warp_weight = 0 disables the cue.
    warp_weight: float = 8.0
    warp_tau: float = 25.0
    warp_lock: float = 0.8
    # Colour matching of the previous mask: search radius max(match_radius_min, match_radius *
    # sqrt(area)) pixels around the flow's prediction; the score is the sum of the colour log-odds
    # under the mask minus match_penalty * area * (distance to the flow's prediction / radius)^2.
    # The search runs on a copy shrunk so the mask's longer side is <= match_max_side pixels.
    # match_radius = 0 disables the matching (flow warping only).
    match_radius: float = 1.0
    match_radius_min: float = 8.0
    match_penalty: float = 2.0
    match_max_side: int = 48
    # Keep a connected component only if >= component_overlap of its pixels lie on the moved mask.
    component_overlap: float = 0.3
    # Cleanup: foreground specks and background holes smaller than max(speckle_min, speckle_ratio *
    # object area) pixels are removed / filled (area-based, so corners and thin parts survive).
    speckle_ratio: float = 0.01
    speckle_min: int = 2
    # Occlusion memory: the mask is "full" when its area >= full_ratio * the largest area seen in
    # this direction; below that, the last full mask moved at the last velocity joins the prior for
    # at most ghost_frames consecutive frames (0 disables).
    full_ratio: float = 0.7
    ghost_frames: int = 6

    def check(self) -> None:
        problems = []
        if self.colour_bins not in (2, 4, 8, 16, 32, 64):
            problems.append(f"colour_bins must be a power of two in 2..64, got {self.colour_bins}")
        if not 0.0 <= self.background_uniform <= 1.0:
            problems.append(f"background_uniform must be in [0, 1], got {self.background_uniform}")
        if not 0.0 < self.full_ratio <= 1.0:
            problems.append(f"full_ratio must be in (0, 1], got {self.full_ratio}")
        if not 0.0 <= self.component_overlap <= 1.0:
            problems.append(f"component_overlap must be in [0, 1], got {self.component_overlap}")
        for name in ("colour_smoothing", "log_odds_clip", "prior_sigma", "prior_inside", "prior_outside",
                     "warp_weight", "match_radius", "match_radius_min", "match_penalty", "ghost_frames"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 < self.warp_lock <= 1.0:
            problems.append(f"warp_lock must be in (0, 1], got {self.warp_lock}")
        for name in ("prior_sigma_min", "search_reach", "warp_tau", "match_max_side"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)}")
        if problems:
            raise ValueError("bad tracker parameters: " + "; ".join(problems))


class ColourModel:
    """Object-vs-background colour log-odds from RGB histograms (a lookup table over ``bins**3`` cells)."""

    def __init__(self, image: np.ndarray, mask: np.ndarray, params: TrackerParams) -> None:
        bins = params.colour_bins
        self.bins = bins
        self.shift = int(np.log2(256 // bins))
        index = self.cell_index(image)
        cells = bins**3
        fg = np.bincount(index[mask], minlength=cells).astype(np.float64)
        bg = np.bincount(index[~mask], minlength=cells).astype(np.float64)
        pf, pb = (self._density(h.reshape(bins, bins, bins), params.colour_smoothing) for h in (fg, bg))
        if pf is None:
            raise ValueError("the colour model needs a non-empty object mask")
        if pb is None:  # the mask covers the whole frame: no background sample
            pb = np.full(cells, 1.0 / cells)
        u = params.background_uniform
        pb = (1.0 - u) * pb + u / cells
        eps = 1e-6 / cells
        self.lut = np.clip(np.log(pf + eps) - np.log(pb + eps), -params.log_odds_clip, params.log_odds_clip)
        self.lut = self.lut.astype(np.float32)

    @staticmethod
    def _density(hist: np.ndarray, sigma: float) -> Optional[np.ndarray]:
        if hist.sum() <= 0:
            return None
        if sigma > 0:
            from scipy.ndimage import gaussian_filter

            hist = gaussian_filter(hist, sigma, mode="constant")
        return (hist / hist.sum()).ravel()

    def cell_index(self, image: np.ndarray) -> np.ndarray:
        q = image.astype(np.int32) >> self.shift
        return (q[..., 0] * self.bins + q[..., 1]) * self.bins + q[..., 2]

    def log_odds(self, image: np.ndarray) -> np.ndarray:
        """``H x W`` float32 log p(colour | object) - log p(colour | background), clipped."""
        return self.lut[self.cell_index(image)]


def _disk(radius: float) -> np.ndarray:
    r = max(int(round(radius)), 0)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _translate(mask: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """``mask`` (bool or float) moved by ``offset`` = (dx, dy) pixels, as float32 (bilinear, zeros outside)."""
    matrix = np.float32([[1, 0, offset[0]], [0, 1, offset[1]]])
    height, width = mask.shape
    return cv2.warpAffine(mask.astype(np.float32), matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


def _fill_holes(mask: np.ndarray, max_area: float) -> np.ndarray:
    """``mask`` with its holes (background components not touching the border) smaller than ``max_area`` filled."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((~mask).astype(np.uint8), connectivity=4)
    if count <= 1:
        return mask
    x, y, w, h, area = (stats[:, i] for i in range(5))
    fill = (x > 0) & (y > 0) & (x + w < mask.shape[1]) & (y + h < mask.shape[0]) & (area < max_area)
    fill[0] = False
    return mask | fill[labels]


def _remove_specks(mask: np.ndarray, min_area: float) -> np.ndarray:
    """``mask`` without its connected components smaller than ``min_area`` pixels."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False
    return keep[labels]


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


@dataclass
class _Direction:
    """Per-direction state: the last full mask, its frame, the velocity and the occlusion counter."""

    template: np.ndarray
    template_frame: int
    largest_area: int
    velocity: Optional[np.ndarray] = None
    frames_not_full: int = 0


class MaskTracker:
    """Flow warping + colour refinement + occlusion memory (see the module docstring).

    Args:
        flow: backward optical flow function (see :data:`FlowFn`).
        params: the tracker's constants.
    """

    def __init__(self, flow: FlowFn, params: TrackerParams | None = None) -> None:
        self.params = params or TrackerParams()
        self.params.check()
        self.flow = flow

    def track(self, video: np.ndarray, keyframe: int, mask: np.ndarray) -> np.ndarray:
        """``T x H x W`` bool masks of ``video`` (``T x H x W x 3`` uint8 RGB); entry ``keyframe`` is ``mask``."""
        out = np.zeros(video.shape[:3], dtype=bool)
        out[keyframe] = mask
        if not mask.any():
            return out
        model = ColourModel(video[keyframe], mask, self.params)
        gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in video]
        for order in (range(keyframe + 1, len(video)), range(keyframe - 1, -1, -1)):
            state = _Direction(template=mask, template_frame=keyframe, largest_area=int(mask.sum()))
            previous = keyframe
            for index in order:
                out[index] = self.step(video[previous], video[index], gray[previous], gray[index], out[previous],
                                       model, state, index)
                previous = index
        return out

    # ------------------------------------------------------------------ one frame

    def step(self, rgb_prev: np.ndarray, rgb_cur: np.ndarray, gray_prev: np.ndarray, gray_cur: np.ndarray,
             mask_prev: np.ndarray, model: ColourModel, state: _Direction, index: int) -> np.ndarray:
        """The mask on the current frame (``index``) from the mask on the previous one."""
        p = self.params
        height, width = mask_prev.shape
        empty = np.zeros((height, width), dtype=bool)
        log_odds = model.log_odds(rgb_cur)
        warped = np.zeros((height, width), np.float32)
        consistency = None
        if mask_prev.any():
            flow = self.flow(gray_cur, gray_prev)
            grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
            map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
            warped = cv2.remap(mask_prev.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
            if p.warp_weight > 0:
                prev_warped = cv2.remap(rgb_prev.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REPLICATE)
                distance2 = np.square(rgb_cur.astype(np.float32) - prev_warped).sum(axis=-1)
                inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
                consistency = np.exp(-distance2 / (2.0 * p.warp_tau**2)) * inside
        prior = warped
        if mask_prev.any() and p.match_radius > 0:
            prior = np.maximum(prior, self._matched(mask_prev, warped, log_odds))
        full = (prior >= 0.5).sum() >= p.full_ratio * state.largest_area
        if (not full and p.ghost_frames > 0 and state.frames_not_full < p.ghost_frames
                and state.velocity is not None):
            ghost = _translate(state.template, state.velocity * abs(index - state.template_frame))
            prior = np.maximum(prior, ghost)
        seeds = prior >= 0.5
        if not seeds.any():
            state.frames_not_full += 1
            return empty
        sigma = max(p.prior_sigma_min, p.prior_sigma * float(np.sqrt(seeds.sum())))
        region = cv2.dilate(seeds.astype(np.uint8), _disk(p.search_reach * sigma)).astype(bool)
        ys, xs = np.nonzero(region)
        rows, cols = slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
        z = 2.0 * cv2.GaussianBlur(prior[rows, cols], (0, 0), sigma) - 1.0
        score = log_odds[rows, cols] + p.prior_inside * np.maximum(z, 0.0) + p.prior_outside * np.minimum(z, 0.0)
        locked = None
        raw = region[rows, cols]
        if consistency is not None:
            c = consistency[rows, cols]
            score = score + p.warp_weight * c * (2.0 * warped[rows, cols] - 1.0)
            locked = c >= p.warp_lock
            raw = raw & np.where(locked, warped[rows, cols] >= 0.5, score > 0)
        else:
            raw = raw & (score > 0)
        specks = max(p.speckle_min, p.speckle_ratio * seeds.sum())
        cleaned = _remove_specks(_fill_holes(raw, specks), specks)
        mask = empty.copy()
        mask[rows, cols] = cleaned if locked is None else np.where(locked, raw, cleaned)
        mask = self._supported_components(mask, seeds)
        self._update(state, mask, mask_prev, index)
        return mask

    def _matched(self, mask_prev: np.ndarray, warped: np.ndarray, log_odds: np.ndarray) -> np.ndarray:
        """``mask_prev`` translated to the best colour match near the flow's prediction (float32)."""
        p = self.params
        height, width = mask_prev.shape
        ys, xs = np.nonzero(mask_prev)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        area = len(ys)
        radius = int(np.ceil(max(p.match_radius_min, p.match_radius * np.sqrt(area))))
        predicted = _centroid(warped >= 0.5) - _centroid(mask_prev) if (warped >= 0.5).any() else np.zeros(2)
        predicted = np.clip(np.round(predicted), -radius, radius).astype(int)
        # Search window (image coordinates) around the predicted position; outside the frame scores 0.
        wy0, wx0 = y0 + predicted[1] - radius, x0 + predicted[0] - radius
        wy1, wx1 = y1 + predicted[1] + radius, x1 + predicted[0] + radius
        window = np.zeros((wy1 - wy0, wx1 - wx0), np.float32)
        iy0, iy1, ix0, ix1 = max(wy0, 0), min(wy1, height), max(wx0, 0), min(wx1, width)
        if iy1 > iy0 and ix1 > ix0:
            window[iy0 - wy0:iy1 - wy0, ix0 - wx0:ix1 - wx0] = log_odds[iy0:iy1, ix0:ix1]
        template = mask_prev[y0:y1, x0:x1].astype(np.float32)
        factor = max(1, int(np.ceil(max(y1 - y0, x1 - x0) / p.match_max_side)))
        if factor > 1:  # coarse search on shrunk copies (sums of log-odds over factor x factor blocks)
            template = cv2.resize(template, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA)
            window = cv2.resize(window, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA)
        if window.shape[0] < template.shape[0] or window.shape[1] < template.shape[1]:
            return np.zeros((height, width), np.float32)
        scores = cv2.matchTemplate(window, template, cv2.TM_CCORR)
        if p.match_penalty > 0:
            dy, dx = np.mgrid[0:scores.shape[0], 0:scores.shape[1]].astype(np.float32)
            centre_y, centre_x = (scores.shape[0] - 1) / 2.0, (scores.shape[1] - 1) / 2.0
            half = max(centre_x, centre_y, 1.0)
            scores = scores - p.match_penalty * template.sum() * ((dx - centre_x) ** 2 + (dy - centre_y) ** 2) / half**2
        _, _, _, (best_x, best_y) = cv2.minMaxLoc(scores)
        offset = np.array([best_x * factor + wx0 - x0, best_y * factor + wy0 - y0], np.float32)
        return _translate(mask_prev, offset)

    def _supported_components(self, mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """The connected components of ``mask`` lying mostly on ``seeds``."""
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        if count <= 1:
            return mask
        overlap = np.bincount(labels[seeds], minlength=count)
        keep = overlap >= self.params.component_overlap * stats[:, cv2.CC_STAT_AREA]
        keep[0] = False
        return keep[labels]

    def _update(self, state: _Direction, mask: np.ndarray, mask_prev: np.ndarray, index: int) -> None:
        area = int(mask.sum())
        threshold = self.params.full_ratio * state.largest_area
        if area and area >= threshold:
            if mask_prev.sum() >= threshold:  # both full: the centroid shift is the object's motion per frame
                state.velocity = _centroid(mask) - _centroid(mask_prev)
            state.template, state.template_frame = mask, index
            state.largest_area = max(state.largest_area, area)
            state.frames_not_full = 0
        else:
            state.frames_not_full += 1

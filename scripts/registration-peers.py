"""Peer comparison for serial-section registration: OpenCV ECC, OpenCV SIFT and SimpleITK
on her2st patient C (sections C2..C6), scored against the study's published alignment.

    /tmp/peer-venv/bin/python scripts/registration-peers.py --data ../shared/data/her2st --out eval-work/peers \
        [--methods ecc,sift,sitk] [--vortexdb transforms.json]

(the venv: numpy pandas pillow opencv-python-headless SimpleITK.)

Task: register every section S in {C2, C3, C5, C6} to the reference R = C4 from the H&E images
alone, giving A_S: S image pixel -> R image pixel (full-resolution pixels of the JPEGs).

Truth and scoring:
- labels/clusters/C{n}.tsv.gz gives, per spot, its centre in the section's image (pixel_x,
  pixel_y) and in the study's common frame (warped_x, warped_y). Per section a least-squares
  affine W_S: pixel -> warped is fitted over all its spots (the map is rigid, so the fit
  residual is ~0.005 warped units; it is reported).
- Pixel size: a least-squares affine array (x, y) -> (pixel_x, pixel_y) over the rows of
  spots/C{n}_selection.tsv with selected == 1; the array step is 200 um, so
  um_per_px_S = 200 / mean(norms of the two linear columns) (~0.686-0.689 um/px).
- For every spot p of S (cluster table): error = W_R(A_S(p)) - W_S(p) in warped units,
  times um_per_px_S / sqrt(|det(linear part of W_S)|) to micrometres. Reported per pair:
  median and 90th percentile of |error| (target registration error, TRE) and the spot count.
- Context rows: identity (A_S = I) and centroid (translation matching the centroids of the
  tissue masks).
- --vortexdb scores a transforms file of the Rust tool ({"frame": [h, w], "sections":
  [[a, b, c, d, e, f], ...], "images": [...]}, each entry image pixel -> frame pixel) as
  A_S = inverse(T_R) o T_S; optional top-level "seconds" and "peak_rss_mb" are carried into
  the table.

Each (method, pair) runs in its own subprocess of this script (--worker), single-threaded
(OMP_NUM_THREADS=1, cv2.setNumThreads(1), SimpleITK global threads 1), so its wall time and
memory are its own: seconds from the first image read to the transform (JPEG decoding
included, interpreter start and imports excluded), peak RSS (VmHWM of the process),
RssAnon and RssFile at the sampled peak (a 5 ms sampler thread; it cannot run while a call
holds the GIL, e.g. inside SimpleITK, so these two are approximate) and the RSS after the imports.

Preprocessing, shared by all methods: the JPEG is decoded reduced (libjpeg DCT scaling: 1/4 when
the finest level is 4 um/px (ECC), 1/8 when it is 8 um/px) and area-resampled to 4, 8 or 16 um/px
taking a nominal 0.69 um/px (the pixel size is metadata; the spot tables are not used by the
registrations); the registration image is the optical density summed over RGB, relative to the slide
background (per-channel 90th percentile), so the background is ~0 and the tissue bright; the tissue
mask is Otsu on the blurred optical density, closed, hole-filled, small blobs dropped.

Methods:
- ecc: cv2.findTransformECC on the optical density (no mask: the background is ~0, so the tissue outline
  takes part). Initialisation: tissue-mask centroids plus a rotation sweep (every 10 degrees over 360, a
  30-iteration MOTION_EUCLIDEAN at 16 um/px from each, the best correlation kept), then MOTION_EUCLIDEAN at
  16, 8, 4 um/px and MOTION_AFFINE at 8, 4 um/px (200 iterations, eps 1e-6, gaussFiltSize 5).
  ecc-nosweep: the same from the 0-degree start only.
- sift: cv2.SIFT_create (default parameters) on the 8-bit optical density at 8 um/px inside the tissue
  masks dilated by 5 px, brute-force L2 2-NN with Lowe's ratio test 0.8, cv2.estimateAffinePartial2D
  (similarity) with RANSAC (3 px = 24 um, 10000 iterations, confidence 0.999), then cv2.estimateAffine2D
  on the RANSAC inliers (kept when there are at least 20, else the similarity). The inlier count is in
  the notes: under ~10 it is chance level and the result is meaningless.
- sitk: SimpleITK ImageRegistrationMethod on the 8 um/px optical density (physical units = full-resolution
  pixels), Mattes mutual information (32 bins, 25% random samples, fixed seed), linear interpolation, no
  mask (a fixed-image tissue mask made the sweep and the rigid stage worse). Euler2D initialised by
  CenteredTransformInitializer(MOMENTS), RegularStepGradientDescent (learning rate estimated once, 200
  iterations, relaxation 0.5) with shrink factors 4, 2, 1 and smoothing 4, 2, 1 px; then an Affine
  initialised from it, GradientDescent (learning rate estimated each iteration, at most 2 px a step, 200
  iterations, convergence window 10) with shrink 2, 1 and smoothing 2, 1 px. Optimizer scales from
  physical shift. sitk-sweep: an exhaustive rotation sweep (every 10 degrees over 360, shrink 4) before
  the Euler2D stage.
Intermediate stages (rigid before affine) are scored too, in their own table and the JSON. Every row also
gets two checks that do not use the published alignment: the Dice of the tissue masks and the correlation of
the optical density inside both masks, at 8 um/px; the row 'published' applies them to the published
alignment itself.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

SECTIONS = ("C2", "C3", "C4", "C5", "C6")
REFERENCE = "C4"
MOVING = tuple(s for s in SECTIONS if s != REFERENCE)
NOMINAL_UM_PER_PX = (
    0.69  # the images' pixel size as metadata; only used to pick the resampling
)
BASELINES = ("identity", "centroid")
METHODS = ("ecc", "ecc-nosweep", "sift", "sitk", "sitk-sweep")
SWEEP_DEG = 10.0


# ---------------------------------------------------------------------------------------------
# Truth and scoring


def fit_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares affine src (n, 2) -> dst (n, 2), as a 3x3 matrix."""
    design = np.c_[src, np.ones(len(src))]
    coef, *_ = np.linalg.lstsq(design, dst, rcond=None)
    m = np.eye(3)
    m[:2] = coef.T
    return m


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:2, :2].T + m[:2, 2]


def load_truth(data: Path) -> dict:
    import pandas as pd

    truth = {}
    for s in SECTIONS:
        spots = pd.read_csv(data / "labels" / "clusters" / f"{s}.tsv.gz", sep="\t")
        pix = spots[["pixel_x", "pixel_y"]].to_numpy(float)
        warped = spots[["warped_x", "warped_y"]].to_numpy(float)
        w = fit_affine(pix, warped)
        resid = np.linalg.norm(apply(w, pix) - warped, axis=1)
        sel = pd.read_csv(data / "spots" / f"{s}_selection.tsv", sep="\t")
        sel = sel[sel["selected"] == 1]
        grid = fit_affine(
            sel[["x", "y"]].to_numpy(float), sel[["pixel_x", "pixel_y"]].to_numpy(float)
        )
        px_per_step = np.linalg.norm(grid[:2, :2], axis=0)
        um_per_px = 200.0 / px_per_step.mean()
        det = np.linalg.det(w[:2, :2])
        truth[s] = {
            "W": w,
            "pixels": pix,
            "um_per_px": float(um_per_px),
            "um_per_warped": float(um_per_px / np.sqrt(abs(det))),
            "W_det": float(det),
            "W_rotation_deg": float(np.degrees(np.arctan2(w[1, 0], w[0, 0]))),
            "fit_residual_rms": float(np.sqrt(np.mean(resid**2))),
            "fit_residual_max": float(resid.max()),
            "n_spots": len(pix),
            "n_selected": len(sel),
        }
    return truth


def score(a_s: np.ndarray, s: str, truth: dict, mapper=None) -> dict:
    """TRE of the map a_s (section pixel -> reference pixel), or of `mapper` (the same,
    point-wise, for a non-rigid registration) when given."""
    t_s, t_r = truth[s], truth[REFERENCE]
    p = t_s["pixels"]
    mapped = mapper(p) if mapper is not None else apply(a_s, p)
    err = apply(t_r["W"], mapped) - apply(t_s["W"], p)
    tre = np.linalg.norm(err, axis=1) * t_s["um_per_warped"]
    return {
        "median_um": float(np.median(tre)),
        "p90_um": float(np.percentile(tre, 90)),
        "n": len(tre),
    }


def image_agreement(a_s: np.ndarray, ls: "Level", lr: "Level") -> dict:
    """How well the images agree under A_S, independent of the published alignment: Dice of the tissue masks
    and the correlation of the optical density inside both (eroded) masks, at the levels given."""
    import cv2

    m = to_level(a_s, ls, lr)[:2]
    size = (lr.od.shape[1], lr.od.shape[0])
    od = cv2.warpAffine(ls.od, m, size)
    mask = cv2.warpAffine(ls.mask, m, size, flags=cv2.INTER_NEAREST) > 0
    ref = lr.mask > 0
    dice = 2.0 * (mask & ref).sum() / (mask.sum() + ref.sum())
    k = np.ones((5, 5), np.uint8)
    inner = (cv2.erode(lr.mask, k) > 0) & (cv2.erode(mask.astype(np.uint8), k) > 0)
    ncc = np.corrcoef(
        cv2.GaussianBlur(od, (0, 0), 1.0)[inner],
        cv2.GaussianBlur(lr.od, (0, 0), 1.0)[inner],
    )[0, 1]
    return {"dice": float(dice), "od_corr_inside": float(ncc)}


def true_rotation_deg(s: str, truth: dict) -> float:
    """Rotation of the true S -> R map, W_R^-1 o W_S."""
    m = np.linalg.inv(truth[REFERENCE]["W"]) @ truth[s]["W"]
    return float(np.degrees(np.arctan2(m[1, 0], m[0, 0])))


def rotation_deg(m: np.ndarray) -> float:
    u, _, vt = np.linalg.svd(m[:2, :2])
    r = u @ vt
    return float(np.degrees(np.arctan2(r[1, 0], r[0, 0])))


# ---------------------------------------------------------------------------------------------
# Images


class Level:
    """One section at one resolution: optical density, tissue mask and level px -> full px."""

    def __init__(self, rgb: np.ndarray, to_full: np.ndarray):
        import cv2

        img = rgb.astype(np.float32)
        bg = np.percentile(img.reshape(-1, 3), 90, axis=0)
        od = -np.log(np.clip((img + 1.0) / (bg + 1.0), 1e-3, 1.0))
        self.od = np.ascontiguousarray(od.sum(axis=2), dtype=np.float32)
        self.to_full = to_full
        blur = cv2.GaussianBlur(self.od, (0, 0), 2.0)
        u8 = np.clip(
            blur * (255.0 / max(float(np.percentile(blur, 99.5)), 1e-6)), 0, 255
        ).astype(np.uint8)
        _, mask = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        mask = cv2.morphologyEx(
            mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
        )
        # fill holes: flood the background from a border pixel that is background
        flood = np.pad(mask, 1)
        cv2.floodFill(flood, None, (0, 0), 128)
        mask = np.where(flood[1:-1, 1:-1] == 128, 0, 255).astype(np.uint8)
        n, lab, stats, _ = cv2.connectedComponentsWithStats(mask)
        if n > 1:
            areas = stats[1:, cv2.CC_STAT_AREA]
            keep = 1 + np.flatnonzero(areas >= 0.05 * areas.max())
            mask = np.isin(lab, keep).astype(np.uint8) * 255
        self.mask = mask

    def od8(self) -> np.ndarray:
        return np.clip(self.od * (255.0 / 3.0), 0, 255).astype(np.uint8)

    def dilated_mask(self, px: int) -> np.ndarray:
        import cv2

        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
        return cv2.dilate(self.mask, k)

    def centroid_full(self) -> np.ndarray:
        ys, xs = np.nonzero(self.mask)
        return apply(self.to_full, np.array([[xs.mean(), ys.mean()]]))[0]


def load_levels(path: Path, ums: tuple[float, ...]) -> dict[float, Level]:
    """Decode the JPEG once, reduced by the largest of 1, 2, 4, 8 that stays finer than the finest
    level, and area-resample to each level. Pixel centres: full = s (x + 0.5) - 0.5."""
    import cv2
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    with Image.open(path) as im:
        width, height = im.size  # header only
    finest = min(ums)
    red = max(r for r in (1, 2, 4, 8) if r * NOMINAL_UM_PER_PX <= finest)
    flag = {
        1: cv2.IMREAD_COLOR,
        2: cv2.IMREAD_REDUCED_COLOR_2,
        4: cv2.IMREAD_REDUCED_COLOR_4,
        8: cv2.IMREAD_REDUCED_COLOR_8,
    }[red]
    bgr = cv2.imread(str(path), flag)
    hr, wr = bgr.shape[:2]
    assert (wr, hr) == (-(-width // red), -(-height // red)), (
        path,
        wr,
        hr,
        width,
        height,
    )
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    del bgr
    levels = {}
    for um in ums:
        wo = round(width * NOMINAL_UM_PER_PX / um)
        ho = round(height * NOMINAL_UM_PER_PX / um)
        small = cv2.resize(rgb, (wo, ho), interpolation=cv2.INTER_AREA)
        sx, sy = red * wr / wo, red * hr / ho
        to_full = np.array(
            [[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]]
        )
        levels[um] = Level(small, to_full)
    return levels


def to_level(a_full: np.ndarray, ls: Level, lr: Level) -> np.ndarray:
    """Full-res S -> R map as a map between level pixels (3x3)."""
    return np.linalg.inv(lr.to_full) @ a_full @ ls.to_full


def to_full(m_level: np.ndarray, ls: Level, lr: Level) -> np.ndarray:
    m = np.eye(3)
    m[: m_level.shape[0]] = m_level
    return lr.to_full @ m @ np.linalg.inv(ls.to_full)


def rigid_about(theta_deg: float, c_s: np.ndarray, c_r: np.ndarray) -> np.ndarray:
    """Rotate by theta about the S centroid, then move it onto the R centroid."""
    t = np.radians(theta_deg)
    m = np.eye(3)
    m[:2, :2] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    m[:2, 2] = c_r - m[:2, :2] @ c_s
    return m


# ---------------------------------------------------------------------------------------------
# Methods (each returns the S -> R full-resolution map, named intermediate stages and notes)


def run_centroid(ls: dict, lr: dict) -> tuple[np.ndarray, dict, dict]:
    s8, r8 = ls[8.0], lr[8.0]
    return rigid_about(0.0, s8.centroid_full(), r8.centroid_full()), {}, {}


def ecc_step(
    ls: Level, lr: Level, a_full: np.ndarray, motion: int, iters: int, eps: float
) -> tuple[np.ndarray, float]:
    """One findTransformECC: template = S, input = R, so the warp maps S level px -> R level px."""
    import cv2

    warp = to_level(a_full, ls, lr)[:2].astype(np.float32)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, iters, eps)
    rho, warp = cv2.findTransformECC(ls.od, lr.od, warp, motion, crit, None, 5)
    return to_full(warp.astype(np.float64), ls, lr), float(rho)


def run_ecc(ls: dict, lr: dict, sweep: bool) -> tuple[np.ndarray, dict, dict]:
    import cv2

    s16, r16 = ls[16.0], lr[16.0]
    c_s, c_r = s16.centroid_full(), r16.centroid_full()
    angles = np.arange(-180.0, 180.0, SWEEP_DEG) if sweep else np.array([0.0])
    best = (-np.inf, None, None)
    t0 = time.perf_counter()
    for theta in angles:
        try:
            a, rho = ecc_step(
                s16, r16, rigid_about(theta, c_s, c_r), cv2.MOTION_EUCLIDEAN, 30, 1e-4
            )
        except cv2.error:
            continue
        if rho > best[0]:
            best = (rho, a, theta)
    notes = {
        "sweep_best_start_deg": best[2],
        "sweep_rho": best[0],
        "sweep_seconds": time.perf_counter() - t0,
    }
    a = best[1] if best[1] is not None else rigid_about(0.0, c_s, c_r)
    stages = {}
    for um in (16.0, 8.0, 4.0):
        a, rho = ecc_step(ls[um], lr[um], a, cv2.MOTION_EUCLIDEAN, 200, 1e-6)
    stages["ecc-euclidean"] = a
    notes["rho_euclidean"] = rho
    for um in (8.0, 4.0):
        a, rho = ecc_step(ls[um], lr[um], a, cv2.MOTION_AFFINE, 200, 1e-6)
    notes["rho_affine"] = rho
    return a, stages, notes


def run_sift(ls: dict, lr: dict) -> tuple[np.ndarray, dict, dict]:
    import cv2

    s, r = ls[8.0], lr[8.0]
    sift = cv2.SIFT_create()
    ks, ds = sift.detectAndCompute(s.od8(), s.dilated_mask(5))
    kr, dr = sift.detectAndCompute(r.od8(), r.dilated_mask(5))
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(ds, dr, k=2)
    good = [
        m for m, n in (p for p in pairs if len(p) == 2) if m.distance < 0.8 * n.distance
    ]
    src = np.float32([ks[m.queryIdx].pt for m in good])
    dst = np.float32([kr[m.trainIdx].pt for m in good])
    notes = {"keypoints": [len(ks), len(kr)], "ratio_matches": len(good)}
    sim, inl = cv2.estimateAffinePartial2D(
        src,
        dst,
        method=cv2.RANSAC,
        ransacReprojThreshold=3.0,
        maxIters=10000,
        confidence=0.999,
    )
    if sim is None:
        raise RuntimeError("estimateAffinePartial2D found no model")
    inl = inl.ravel().astype(bool)
    notes["inliers"] = int(inl.sum())
    a = to_full(sim, s, r)
    stages = {"sift-similarity": a}
    if inl.sum() >= 20:
        aff, inl2 = cv2.estimateAffine2D(
            src[inl],
            dst[inl],
            method=cv2.RANSAC,
            ransacReprojThreshold=3.0,
            maxIters=10000,
            confidence=0.999,
        )
        if aff is not None:
            notes["affine_inliers"] = int(inl2.sum())
            a = to_full(aff, s, r)
    return a, stages, notes


def sitk_image(level: Level):
    """The level's optical density as a SimpleITK image whose physical coordinates are full-resolution pixels."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(level.od)
    img.SetSpacing((level.to_full[0, 0], level.to_full[1, 1]))
    img.SetOrigin((level.to_full[0, 2], level.to_full[1, 2]))
    return img


def sitk_matrix(tx) -> np.ndarray:
    """A SimpleITK Euler2D/Affine transform (fixed physical -> moving physical) as a 3x3 matrix."""
    m = np.array(tx.GetMatrix()).reshape(2, 2)
    c = np.array(tx.GetCenter())
    t = np.array(tx.GetTranslation())
    out = np.eye(3)
    out[:2, :2] = m
    out[:2, 2] = c + t - m @ c
    return out


def sitk_method(shrink: list[int], sigmas: list[float]):
    """Mattes MI (32 bins, 25% random samples, fixed seed), linear interpolation, a pyramid."""
    import SimpleITK as sitk

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.25, 42)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetShrinkFactorsPerLevel(shrink)
    reg.SetSmoothingSigmasPerLevel(sigmas)
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    return reg


def run_sitk(ls: dict, lr: dict, sweep: bool) -> tuple[np.ndarray, dict, dict]:
    import SimpleITK as sitk

    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(1)
    fixed, moving = sitk_image(lr[8.0]), sitk_image(ls[8.0])
    euler = sitk.CenteredTransformInitializer(
        fixed,
        moving,
        sitk.Euler2DTransform(),
        sitk.CenteredTransformInitializerFilter.MOMENTS,
    )
    euler = sitk.Euler2DTransform(euler)
    notes = {}
    if sweep:
        reg = sitk_method([4], [4])
        steps = round(180.0 / SWEEP_DEG)
        reg.SetOptimizerAsExhaustive([steps, 0, 0])
        reg.SetOptimizerScales([np.radians(SWEEP_DEG), 1.0, 1.0])
        reg.SetInitialTransform(euler, inPlace=True)
        reg.Execute(fixed, moving)
        notes["sweep_best_start_deg"] = float(np.degrees(euler.GetAngle()))
    reg = sitk_method([4, 2, 1], [4, 2, 1])
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0,
        minStep=1e-3,
        numberOfIterations=200,
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-6,
        estimateLearningRate=reg.Once,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetInitialTransform(euler, inPlace=True)
    reg.Execute(fixed, moving)
    notes["mi_euler"] = reg.GetMetricValue()
    notes["iterations_euler"] = reg.GetOptimizerIteration()
    stages = {"sitk-euler": np.linalg.inv(sitk_matrix(euler))}

    affine = sitk.AffineTransform(2)
    affine.SetCenter(euler.GetCenter())
    affine.SetMatrix(euler.GetMatrix())
    affine.SetTranslation(euler.GetTranslation())
    reg = sitk_method([2, 1], [2, 1])
    reg.SetOptimizerAsGradientDescent(
        learningRate=1.0,
        numberOfIterations=200,
        convergenceMinimumValue=1e-6,
        convergenceWindowSize=10,
        estimateLearningRate=reg.EachIteration,
        maximumStepSizeInPhysicalUnits=2.0,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetInitialTransform(affine, inPlace=True)
    reg.Execute(fixed, moving)
    notes["mi_affine"] = reg.GetMetricValue()
    notes["iterations_affine"] = reg.GetOptimizerIteration()
    # SimpleITK maps fixed (R) physical -> moving (S) physical; A_S is its inverse
    return np.linalg.inv(sitk_matrix(affine)), stages, notes


# ---------------------------------------------------------------------------------------------
# Worker: one (method, pair) in its own process


class MemorySampler:
    """Samples /proc/self/status every 5 ms; keeps the values at the highest VmRSS seen."""

    def __init__(self):
        self.peak = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def read() -> dict:
        out = {}
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    key, _, val = line.partition(":")
                    if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                        out[key] = int(val.split()[0]) / 1024.0  # MiB
        except OSError:
            pass
        return out

    def _run(self):
        while not self._stop.is_set():
            now = self.read()
            if now.get("VmRSS", 0) >= self.peak.get("VmRSS", -1):
                self.peak = now
            self._stop.wait(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def worker(method: str, pair: str, data: Path) -> dict:
    import cv2

    cv2.setNumThreads(1)
    cv2.setRNGSeed(0)  # RANSAC
    if method.startswith("sitk"):
        import SimpleITK as sitk

        sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(1)
    after_import = MemorySampler.read()
    ums = (16.0, 8.0, 4.0) if method.startswith("ecc") else (8.0,)
    with MemorySampler() as sampler:
        t0 = time.perf_counter()
        ls = load_levels(data / "images" / f"{pair}.jpg", ums)
        lr = load_levels(data / "images" / f"{REFERENCE}.jpg", ums)
        t_load = time.perf_counter() - t0
        if method == "centroid":
            a, stages, notes = run_centroid(ls, lr)
        elif method in ("ecc", "ecc-nosweep"):
            a, stages, notes = run_ecc(ls, lr, sweep=method == "ecc")
        elif method == "sift":
            a, stages, notes = run_sift(ls, lr)
        elif method in ("sitk", "sitk-sweep"):
            a, stages, notes = run_sitk(ls, lr, sweep=method == "sitk-sweep")
        else:
            raise ValueError(method)
        seconds = time.perf_counter() - t0
    end = MemorySampler.read()
    return {
        "A": a.tolist(),
        "stages": {k: v.tolist() for k, v in stages.items()},
        "notes": notes,
        "seconds": seconds,
        "load_seconds": t_load,
        "memory_mb": {
            # VmHWM, not getrusage's maxrss: Linux carries ru_maxrss across execve, so it would include
            # the parent's pages at fork time
            "peak_rss": end.get(
                "VmHWM", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
            ),
            "rss_anon_at_peak": sampler.peak.get("RssAnon"),
            "rss_file_at_peak": sampler.peak.get("RssFile"),
            "rss_anon_end": end.get("RssAnon"),
            "rss_file_end": end.get("RssFile"),
            "rss_after_imports": after_import.get("VmRSS"),
        },
    }


# ---------------------------------------------------------------------------------------------
# Driver


def run_worker_process(method: str, pair: str, data: Path) -> dict:
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS="1",
    )
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        method,
        "--pair",
        pair,
        "--data",
        str(data),
    ]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return {
            "error": proc.stderr.strip().splitlines()[-1]
            if proc.stderr.strip()
            else f"exit {proc.returncode}"
        }
    return json.loads(proc.stdout.strip().splitlines()[-1])


def field_at(f: dict, p: np.ndarray) -> np.ndarray:
    """A vortexdb displacement field (transforms file `fields`) at frame points p (n, 2):
    bilinear between control points, constant beyond them."""
    rows, cols = f["grid"]
    dx = np.array(f["dx"], float).reshape(rows, cols)
    dy = np.array(f["dy"], float).reshape(rows, cols)
    gx = np.clip((p[:, 0] - f["origin"][0]) / f["step"], 0, cols - 1)
    gy = np.clip((p[:, 1] - f["origin"][1]) / f["step"], 0, rows - 1)
    c0, r0 = np.floor(gx).astype(int), np.floor(gy).astype(int)
    c1, r1 = np.minimum(c0 + 1, cols - 1), np.minimum(r0 + 1, rows - 1)
    tx, ty = gx - c0, gy - r0

    def lerp(v):
        top = v[r0, c0] * (1 - tx) + v[r0, c1] * tx
        bot = v[r1, c0] * (1 - tx) + v[r1, c1] * tx
        return top * (1 - ty) + bot * ty

    return np.stack([lerp(dx), lerp(dy)], axis=1)


def vortexdb_mappers(path: Path) -> dict:
    """Section pixel -> reference pixel point maps of a transforms file with fields: the
    section's affine into the frame, the field inverted (p + d(p) = q, fixed point), then
    the reference's inverse affine (the reference has no field)."""
    doc = json.loads(path.read_text())
    fields = doc.get("fields") or []
    names = [Path(p).stem for p in doc.get("images", SECTIONS)]
    mats = {}
    for name, t in zip(names, doc["sections"], strict=True):
        m = np.eye(3)
        m[:2] = np.array(t, float).reshape(2, 3)
        mats[name] = m
    inv_r = np.linalg.inv(mats[REFERENCE])
    out = {}
    for i, name in enumerate(names):
        f = fields[i] if i < len(fields) else None
        if f is None or name not in MOVING:
            continue

        def mapper(pts, m=mats[name], f=f):
            q = apply(m, pts)
            p = q.copy()
            for _ in range(50):
                p = q - field_at(f, p)
            return apply(inv_r, p)

        out[name] = mapper
    return out


def vortexdb_maps(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    doc = json.loads(path.read_text())
    names = [Path(p).stem for p in doc.get("images", SECTIONS)]
    mats = {}
    for name, t in zip(names, doc["sections"], strict=True):
        m = np.eye(3)
        m[:2] = np.array(t, float).reshape(2, 3)
        mats[name] = m
    inv_r = np.linalg.inv(mats[REFERENCE])
    extra = {k: doc[k] for k in ("seconds", "peak_rss_mb") if k in doc}
    return {s: inv_r @ mats[s] for s in MOVING if s in mats}, extra


def fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def markdown(results: dict) -> str:
    lines = [
        (
            "| method | pair | median TRE um | p90 TRE um | n | seconds | peak RSS MiB | RssAnon / RssFile MiB "
            "| rotation deg (true) | mask Dice | OD corr |"
        ),
        "|" + "---|" * 11,
    ]
    for method, pairs in results.items():
        for pair, r in pairs.items():
            if "error" in r:
                lines.append(f"| {method} | {pair} | failed: {r['error']} |" + " |" * 8)
                continue
            mem = r.get("memory_mb") or {}
            anon_file = (
                f"{fmt(mem.get('rss_anon_at_peak'), '.0f')} / {fmt(mem.get('rss_file_at_peak'), '.0f')}"
                if "rss_anon_at_peak" in mem
                else "-"
            )
            lines.append(
                f"| {method} | {pair} | {r['median_um']:.1f} | {r['p90_um']:.1f} | {r['n']} | "
                f"{fmt(r.get('seconds'), '.2f')} | {fmt(mem.get('peak_rss'), '.0f')} | {anon_file} | "
                f"{r['rotation_deg']:.2f} ({r['true_rotation_deg']:.2f}) | {r['dice']:.4f} | "
                f"{r['od_corr_inside']:.3f} |"
            )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/her2st", type=Path)
    ap.add_argument("--out", default="eval-work/registration-peers", type=Path)
    ap.add_argument(
        "--methods",
        default="ecc,sift,sitk",
        help=f"comma-separated, of {', '.join(METHODS)} (identity and centroid always run)",
    )
    ap.add_argument(
        "--vortexdb",
        type=Path,
        help="transforms JSON written by the Rust tool, to score alongside",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--pair", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.pair, args.data)))
        return

    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        ap.error(f"unknown methods {unknown}; known: {', '.join(METHODS)}")
    t_start = time.perf_counter()
    truth = load_truth(args.data)
    levels = {
        s: load_levels(args.data / "images" / f"{s}.jpg", (8.0,))[8.0] for s in SECTIONS
    }
    results: dict[str, dict] = {}
    stages: dict[str, dict] = {}

    def scored(a: np.ndarray, pair: str, mapper=None) -> dict:
        return {
            **score(a, pair, truth, mapper),
            "rotation_deg": rotation_deg(a),
            "true_rotation_deg": true_rotation_deg(pair, truth),
            **image_agreement(a, levels[pair], levels[REFERENCE]),
            "A": a.tolist(),
        }

    for pair in MOVING:
        published = np.linalg.inv(truth[REFERENCE]["W"]) @ truth[pair]["W"]
        results.setdefault("published", {})[pair] = scored(published, pair)
        results.setdefault("identity", {})[pair] = {
            **scored(np.eye(3), pair),
            "seconds": 0.0,
        }
    for method in ["centroid", *methods]:
        for pair in MOVING:
            r = run_worker_process(method, pair, args.data)
            if "error" in r:
                results.setdefault(method, {})[pair] = r
                print(f"{method} {pair}: failed: {r['error']}", file=sys.stderr)
                continue
            keep = {k: r[k] for k in ("seconds", "load_seconds", "memory_mb", "notes")}
            results.setdefault(method, {})[pair] = {
                **scored(np.array(r["A"]), pair),
                **keep,
            }
            for stage, m in r["stages"].items():
                stages.setdefault(stage, {})[pair] = scored(np.array(m), pair)
            print(
                f"{method} {pair}: median {results[method][pair]['median_um']:.1f} um, {r['seconds']:.1f} s",
                file=sys.stderr,
            )
    if args.vortexdb:
        maps, extra = vortexdb_maps(args.vortexdb)
        mappers = vortexdb_mappers(args.vortexdb)
        mem = (
            {"memory_mb": {"peak_rss": extra["peak_rss_mb"]}}
            if "peak_rss_mb" in extra
            else {}
        )
        for pair, a in maps.items():
            results.setdefault("vortexdb", {})[pair] = {
                **scored(a, pair, mappers.get(pair)),
                "seconds": extra.get("seconds"),
                **mem,
            }
    total = time.perf_counter() - t_start

    stage_lines = [
        "| stage | pair | median TRE um | p90 TRE um | rotation deg | mask Dice | OD corr |",
        "|---|---|---|---|---|---|---|",
    ]
    for stage, pairs in stages.items():
        for pair, r in pairs.items():
            stage_lines.append(
                f"| {stage} | {pair} | {r['median_um']:.1f} | {r['p90_um']:.1f} | "
                f"{r['rotation_deg']:.2f} | {r['dice']:.4f} | {r['od_corr_inside']:.3f} |"
            )
    truth_lines = [
        "| section | um/px | um per warped unit | W rotation deg | W fit residual rms / max (warped) | spots |",
        "|---|---|---|---|---|---|",
    ]
    for s, t in truth.items():
        truth_lines.append(
            f"| {s} | {t['um_per_px']:.4f} | {t['um_per_warped']:.4f} | {t['W_rotation_deg']:.2f} | "
            f"{t['fit_residual_rms']:.4f} / {t['fit_residual_max']:.4f} | {t['n_spots']} |"
        )
    cmd = " ".join([sys.executable, *sys.argv])
    report = "\n".join(
        [
            f"# Registration peers: her2st patient C, C2 C3 C5 C6 to {REFERENCE}",
            "",
            f"`{cmd}`",
            "",
            (
                f"Whole run: {total:.0f} s. 'published' is the study's alignment itself (TRE 0 by construction), "
                "for the image-agreement columns (Dice of the tissue masks, optical-density correlation inside both, "
                "at 8 um/px)."
            ),
            "",
            markdown(results),
            "",
            "Intermediate stages:",
            "",
            *stage_lines,
            "",
            "Truth (W_S: pixel -> warped, least squares over the cluster-table spots):",
            "",
            *truth_lines,
            "",
        ]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    truth_json = {
        s: {k: v for k, v in t.items() if k != "pixels"} | {"W": t["W"].tolist()}
        for s, t in truth.items()
    }
    (args.out / "registration-peers.json").write_text(
        json.dumps(
            {
                "command": cmd,
                "reference": REFERENCE,
                "total_seconds": total,
                "truth": truth_json,
                "results": results,
                "stages": stages,
            },
            indent=1,
        )
    )
    (args.out / "registration-peers.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()

"""The numbers reported in the TTP paper (Kokkinos & Kokkinos, NeurIPS 2021), for side columns.

Source: ``shared/reference/ttp.md`` section 2. mIoU in [0, 1], PCK in percent (alpha = 0.1,
keypoint reprojection), 3D IoU on 32^3 voxels. CUB-200-2011 for Tables 1-3, Pascal3D+ for Table 4.
"""
from __future__ import annotations

# Table 1 (CUB): (method, keypoints, camera hypotheses) -> (rigid mIoU, rigid PCK, non-rigid mIoU,
# non-rigid PCK); None = not reported. Std over 5 seeds in TABLE1_STD for TTP.
TABLE1 = {
    ("CMR", "yes", 1): (None, None, 0.703, 81.2),
    ("(A)CSM", "yes (+ camera priors)", 1): (0.622, 68.5, 0.705, 72.4),
    ("ACMR", "yes", 1): (None, None, 0.708, 85.5),
    ("TTP", "yes", 1): (0.656, 70.0, 0.760, 93.4),
    ("(A)CSM", "priors", 8): (0.625, 50.9, 0.693, 46.8),
    ("(A)CSM", "priors", 1): (0.637, 39.0, 0.684, 44.5),
    ("TTP", "no", 1): (0.652, 48.7, 0.752, 50.9),
}
TABLE1_STD = {
    ("TTP", "yes", 1): (0.002, 0.53, 0.004, 0.14),
    ("TTP", "no", 1): (0.008, 0.66, 0.003, 0.43),
}

# Table 2: test-time solver iterations -> (mIoU, PCK), with and without keypoints
TABLE2 = {
    "with keypoints": {1: (0.732, 92.5), 2: (0.755, 93.3), 3: (0.758, 93.3), 4: (0.758, 93.4)},
    "without keypoints": {1: (0.746, 51.4), 2: (0.752, 51.1), 3: (0.752, 51.1), 4: (0.752, 51.1)},
}

# Table 3a: loss ablation -> {"with keypoints": (mIoU, PCK), "without keypoints": (mIoU, PCK)}
TABLE3A = {
    "TTP": {"with keypoints": (0.765, 93.6), "without keypoints": (0.749, 50.9)},
    "- L_pixel": {"with keypoints": (0.752, 92.7), "without keypoints": (0.667, 49.2)},
    "- L_vis": {"with keypoints": (0.75, 92.3), "without keypoints": (0.74, 9.3)},
    "- L_equiv": {"with keypoints": (0.751, 92.5), "without keypoints": (0.71, 28.2)},
}

# Table 3b: number of basis components K ("rigid" = 0)
TABLE3B = {
    "rigid": {"with keypoints": (0.657, 70.7), "without keypoints": (0.646, 48.4)},
    4: {"with keypoints": (0.726, 88.2), "without keypoints": (0.72, 47.9)},
    8: {"with keypoints": (0.745, 90.6), "without keypoints": (0.733, 50.4)},
    16: {"with keypoints": (0.765, 93.6), "without keypoints": (0.749, 50.9)},
    32: {"with keypoints": (0.771, 93.7), "without keypoints": (0.748, 49.8)},
    64: {"with keypoints": (0.775, 94.2), "without keypoints": (0.752, 49.8)},
}

# Table 4 (Pascal3D+): 3D IoU
TABLE4 = {
    "CSDM": {"aeroplane": 0.40, "car": 0.60},
    "DRC": {"aeroplane": 0.42, "car": 0.67},
    "UCMR": {"aeroplane": None, "car": 0.646},
    "CMR": {"aeroplane": 0.468, "car": 0.64},
    "TTP with keypoints": {"aeroplane": 0.488, "car": 0.67},
    "TTP without keypoints": {"aeroplane": 0.45, "car": 0.665},
}
# Pascal3D+ car, 2D metrics: TTP vs CSM (mIoU in percent, PCK)
PASCAL_CAR_2D = {"TTP": {"miou": 74.9, "pck": 45.7}, "CSM": {"miou": 51.2, "pck": 40.0}}

# Table 5: run time at 256 x 256 (ms): (CNN, optimisation, total)
TABLE5 = {
    ("GPU", 1): (4.02, 33.44, 37.46),
    ("GPU", 4): (4.02, 125.14, 129.16),
    ("CPU", 1): (18.52, 33.44, 51.96),
    ("CPU", 4): (None, None, 143.67),
}
TABLE5_OTHERS = {"CMR": 5.11, "CSM": 150.73, "ACSM": 191.46}

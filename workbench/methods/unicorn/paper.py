"""UNICORN's reported numbers (Monnier et al., ECCV 2022), from ``shared/reference/unicorn.md`` section 2.

Chamfer-L1 (x10, OccNet/DVR convention), lower is better, ShapeNet NMR renders; the paper's ICP is
rigid (Besl-McKay). ``CATEGORY_MAP`` maps ShapeNet classes to the synthetic world's categories
where one exists.
"""
from __future__ import annotations

SHAPENET_CLASSES = ("airplane", "bench", "cabinet", "car", "chair", "display", "lamp", "phone", "rifle", "sofa",
                    "speaker", "table", "vessel")

#: Table 2 rows: method -> per-class values then the mean.
TABLE2 = {
    "UNICORN (unsupervised, ICP)": (0.136, 0.208, 0.218, 0.213, 0.286, 0.286, 0.661, 0.152, 0.119, 0.248, 0.353,
                                    0.301, 0.252, 0.264),
    "DVR* (category-specific, ICP)": (0.139, 0.223, 0.235, 0.189, 0.224, 0.216, 0.346, 0.125, 0.109, 0.191, 0.291,
                                      0.269, 0.202, 0.212),
    "DVR* (category-specific)": (0.151, 0.232, 0.257, 0.198, 0.249, 0.281, 0.386, 0.147, 0.131, 0.218, 0.321,
                                 0.283, 0.220, 0.236),
    "DVR": (0.190, 0.210, 0.220, 0.196, 0.264, 0.255, 0.413, 0.148, 0.175, 0.224, 0.289, 0.280, 0.245, 0.239),
    "SoftRas": (0.149, 0.241, 0.231, 0.221, 0.338, 0.284, 0.381, 0.131, 0.155, 0.407, 0.320, 0.374, 0.233, 0.266),
}

#: Table 3 (ablation, M = 256): class -> (full, without L_swap, without progressive conditioning).
TABLE3 = {
    "airplane": (0.140, 0.159, 0.143),
    "bench": (0.205, 0.256, 0.204),
    "car": (0.222, 0.263, 0.223),
    "chair": (0.297, 0.466, 0.626),
    "mean": (0.216, 0.286, 0.299),
}

#: Official README (big models, gradient ICP with anisotropic scale; not comparable with Table 2).
README_BIG = {"airplane": 0.110, "bench": 0.159, "cabinet": 0.137, "car": 0.168, "chair": 0.253, "display": 0.220,
              "lamp": 0.523, "phone": 0.127, "rifle": 0.097, "sofa": 0.192, "speaker": 0.224, "table": 0.243,
              "vessel": 0.155, "mean": 0.201}

#: ShapeNet class -> synthetic world category.
CATEGORY_MAP = {"airplane": "airplane", "bench": "bench", "car": "car", "chair": "chair", "display": "monitor",
                "lamp": "lamp", "sofa": "sofa", "table": "table"}


def table2_value(method: str, shapenet_class: str) -> float:
    """Table 2 value of ``method`` for a ShapeNet class (or ``"mean"``)."""
    row = TABLE2[method]
    if shapenet_class == "mean":
        return row[-1]
    return row[SHAPENET_CLASSES.index(shapenet_class)]

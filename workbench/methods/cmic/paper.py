"""The paper's reported numbers (Lin et al., ICCV 2021), for the side columns of our tables.

Accuracies are percentages; ``d_hau`` is the modified Hausdorff distance (lower is better) and
``iou`` the voxel IoU of the top-1 shape, on seen (Pix3D / car) and unseen (ShapeNet) galleries.
"""
from __future__ import annotations

TABLE1_COLUMNS = ("top1", "top10", "d_hau", "iou", "unseen_d_hau", "unseen_iou")

# Table 1: ours (CMIC) and the previous best (HEG-TS), per dataset / category.
TABLE1 = {
    "CMIC": {
        "Pix3D bed": (73.3, 96.1, 0.0093, 0.8927, 0.0408, 0.3999),
        "Pix3D chair": (79.4, 96.3, 0.0080, 0.8661, 0.0190, 0.6384),
        "Pix3D sofa": (80.7, 97.1, 0.0045, 0.9329, 0.0151, 0.8017),
        "Pix3D table": (76.9, 93.5, 0.0168, 0.8088, 0.0213, 0.4701),
        "Pix3D mean": (78.9, 96.1, 0.0086, 0.8746, 0.0202, 0.6317),
        "CompCars": (77.8, 94.1, 0.0023, 0.9399, 0.0080, 0.9053),
        "Stanford Cars": (83.4, 96.4, 0.0021, 0.9431, 0.0060, 0.9217),
    },
    "HEG-TS": {
        "Pix3D bed": (65.3, 95.4, 0.0122, 0.8213, 0.0425, 0.3684),
        "Pix3D chair": (87.9, 97.9, 0.0041, 0.9063, 0.0152, 0.7482),
        "Pix3D sofa": (72.8, 97.7, 0.0047, 0.9070, 0.0156, 0.7963),
        "Pix3D table": (73.7, 92.4, 0.0170, 0.7667, 0.0228, 0.4391),
        "Pix3D mean": (74.9, 95.8, 0.0095, 0.8503, 0.0240, 0.6081),
        "CompCars": (67.1, 93.7, 0.0035, 0.9256, 0.0092, 0.8591),
        "Stanford Cars": (68.4, 92.1, 0.0034, 0.9210, 0.0074, 0.8735),
    },
    "LFD": {"Pix3D mean": (60.7, 86.3, 0.0171, 0.7663, 0.0370, 0.4095)},
}

# Table 2: top-1 (%) by (augmentation, instance loss, category loss); None = not applicable
# (the car datasets are single-category, so the category loss is never used there).
TABLE2 = {
    "Pix3D": {
        ("transfer", "contrastive", True): 78.9,
        ("none", "contrastive", True): 75.2,
        ("hsv", "contrastive", True): 76.6,
        ("transfer", "contrastive", False): 74.7,
        ("none", "contrastive", False): 71.4,
        ("transfer", "triplet", True): 66.5,
        ("transfer", "triplet", False): 62.7,
    },
    "CompCars": {
        ("transfer", "contrastive", None): 77.8,
        ("hsv", "contrastive", None): 73.0,
        ("none", "contrastive", None): 67.3,
        ("transfer", "triplet", None): 64.0,
    },
    "Stanford Cars": {
        ("transfer", "contrastive", None): 83.4,
        ("hsv", "contrastive", None): 81.5,
        ("none", "contrastive", None): 81.7,
        ("transfer", "triplet", None): 80.3,
    },
}

# Table 3 (Pix3D): with / without the category loss: top-1 and category accuracy (%).
TABLE3 = {True: {"top1": 78.9, "category_acc": 96.1}, False: {"top1": 75.2, "category_acc": 95.9}}

# Table 4 (Pix3D): category loss with / without the ground-truth shape in the positives, top-1 (%).
TABLE4 = {True: 78.9, False: 76.7}

SETTINGS = {
    "tau": 0.1, "beta1": 0.2, "dim": 128, "views": 12, "image_size": 224, "lr": 5e-5, "betas": (0.5, 0.999),
    "batch": 60, "epochs": 500, "official_batch": 30, "official_epochs": 400,
}

"""Numbers reported by the 3D-CompNets paper (Yuan et al., ICCV 2025), for the side columns.

All accuracies in percent. Table 4 columns: IID, occlusion L1/L2/L3/avg, corruption
brightness/frost/snow/fog/avg. Table 3 columns: the 10 unseen ImageNet3D classes and the average
(pose accuracy at pi/6). Source: ``shared/reference/compnet3d.md`` section 5.
"""
from __future__ import annotations

TABLE1 = {  # model -> (N, loss GFLOPs, train hours, IID accuracy); ResNet50 backbone
    "NOVUM (100 epochs)": {"N": "full", "gflops": 61.2, "train_hours": 66.8, "acc": 85.7},
    "3D-CompNets N=64": {"N": 64, "gflops": 4.31, "train_hours": 13.3, "acc": 86.3},
    "3D-CompNets N=32": {"N": 32, "gflops": 2.71, "train_hours": 9.3, "acc": 86.5},
}

TABLE2 = {  # classification accuracy: IID, synthetic (3D-controlled diffusion) domain shift
    "ResNet50": {"iid": 84.8, "synthetic": 58.2},
    "NOVUM (R50)": {"iid": 85.7, "synthetic": 68.8},
    "3D-CompNets (R50)": {"iid": 86.5, "synthetic": 69.3},
    "DINOv2 (ViT-B/14)": {"iid": 92.4, "synthetic": 72.3},
    "3D-CompNets (ViT-B/14)": {"iid": 93.5, "synthetic": 74.9},
}

TABLE3_CLASSES = ("tricycle", "unicycle", "laptop", "go-kart", "RV", "suitcase", "teapot",
                  "filing cabinet", "sofa", "projector")
TABLE3 = {  # pose accuracy at pi/6 on unseen classes (per class, then average)
    "ResNet50": (17.1, 5.2, 15.5, 6.1, 20.5, 2.9, 32.4, 11.6, 11.4, 23.1, 15.0),
    "DINOv2": (29.6, 9.0, 18.2, 51.5, 41.7, 17.5, 36.7, 75.3, 59.6, 41.2, 38.9),
    "3D-CompNets": (42.5, 30.1, 51.7, 69.6, 46.1, 47.6, 44.0, 62.6, 32.9, 46.4, 45.5),
}

TABLE4_COLUMNS = ("iid", "occ_l1", "occ_l2", "occ_l3", "occ_avg",
                  "brightness", "frost", "snow", "fog", "corr_avg")
TABLE4 = {
    "class": {
        "ResNet50": (84.8, 58.8, 34.7, 11.2, 33.9, 71.4, 37.5, 19.2, 63.9, 48.0),
        "NOVUM": (85.7, 64.6, 37.6, 13.4, 38.5, 75.1, 46.1, 30.1, 72.6, 55.9),
        "DINOv2": (92.4, 68.3, 40.4, 16.5, 41.7, 71.0, 49.6, 22.9, 66.2, 52.4),
        "3D-CompNets (ViT)": (93.5, 69.3, 42.8, 19.1, 43.7, 82.6, 50.2, 30.4, 73.6, 59.2),
    },
    "pose": {
        "ResNet50": (55.6, 40.4, 27.5, 14.4, 27.4, 50.8, 29.1, 38.7, 51.3, 42.5),
        "NOVUM": (57.2, 42.6, 28.8, 15.6, 29.0, 51.9, 32.5, 41.0, 52.7, 44.5),
        "DINOv2": (56.9, 42.7, 28.2, 15.7, 28.9, 52.2, 30.4, 40.9, 51.6, 43.8),
        "3D-CompNets (ViT)": (57.6, 43.4, 29.2, 16.0, 29.5, 54.1, 32.7, 42.2, 53.9, 45.7),
    },
}

# which of our variants corresponds to which paper row (Tables 2 and 4)
VARIANT_TO_PAPER = {
    "compnet3d": {"table2": "3D-CompNets (R50)", "table4": "3D-CompNets (ViT)", "table3": "3D-CompNets"},
    "compnet3d_n64": {"table2": "3D-CompNets (R50)", "table4": "3D-CompNets (ViT)", "table3": "3D-CompNets"},
    "compnet3d_noweights": {"table2": None, "table4": None, "table3": None},
    "novum": {"table2": "NOVUM (R50)", "table4": "NOVUM", "table3": None},
    "dualhead": {"table2": "ResNet50", "table4": "ResNet50", "table3": "ResNet50"},
    "compnet3d_vit": {"table2": "3D-CompNets (ViT-B/14)", "table4": "3D-CompNets (ViT)", "table3": "3D-CompNets"},
    "dualhead_vit": {"table2": "DINOv2 (ViT-B/14)", "table4": "DINOv2", "table3": "DINOv2"},
}

"""DeepRadScore engine: Deep-RadScore (Zhang et al., Biomarker Research 2024) for NSCLC CT.

Imports no slicer, qt or ctk: the CLI (``deepradscore``) and the 3D Slicer module both call it.
Heavy dependencies (torch, pyradiomics, scikit-learn) are imported inside the modules that need
them, so ``import DeepRadScoreLib`` stays cheap and works where they are not installed yet.
"""

__version__ = "0.1.0"

# The paper's ten endpoints, in the order of its Table 1.
ENDPOINTS = ("LVI", "PI", "T4", "EGFR", "KRAS", "ALK", "TP53", "PIK3CA", "ROS1", "PDL1")

"""Evaluation on held-out cases: AUCs with DeLong CIs and tests, threshold metrics with bootstrap
CIs, the cohort table (Table 1), figures, SHAP, Grad-CAM panels, the backbone comparison's rows
(Table 2) and the self-contained HTML report. Reading the cohort, extracting and training are
``pipelines``'.
"""

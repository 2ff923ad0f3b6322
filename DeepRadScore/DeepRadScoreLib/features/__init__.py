"""Radiomics features of the tumour and its peritumoral ring, one case or a whole cohort.

``radiomics`` computes pyradiomics' 851 features per region (the default parameter file,
``radiomics_params.yaml``, ships in this package); ``extraction`` runs cohorts (cache, processes,
Dask) and owns the feature-table format (``output_paths``, ``read_feature_table``).
"""

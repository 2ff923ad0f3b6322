"""The fitted models and their bundle: the two RadScores (LASSO on z-scored, selected features),
the classifier chosen among seven by repeated cross-validation with a nested-CV estimate of that
choice, scoring of cases, bundle.json's typed schema (``meta``) and the bundle on disk (safe
formats only). ``fitting`` fits the classifiers and RadScores of a bundle (the Deep-CT and the
cohort are ``pipelines.train``'s); prediction imports only ``bundle``, ``meta`` and ``scoring``.
"""

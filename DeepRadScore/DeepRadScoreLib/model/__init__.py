"""The fitted models and their bundle: the two RadScores (LASSO on z-scored, selected features),
the classifier chosen among seven by repeated cross-validation, scoring of cases, and the bundle
on disk (safe formats only). ``training`` fits a bundle; prediction imports only ``bundle`` and
``scoring``.
"""

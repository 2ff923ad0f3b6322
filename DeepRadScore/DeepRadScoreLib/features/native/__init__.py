"""A pyradiomics-equal radiomics backend in numpy, scipy and PyWavelets (no pyradiomics import).

It returns pyradiomics' own numbers (relative 1e-6) for the parameter files it supports, for
machines where pyradiomics cannot be installed (issue 14). ``params`` reads and validates a
pyradiomics parameter file, ``preprocess`` reproduces pyradiomics' crops, mask checks and
discretisation (the filters are :mod:`DeepRadScoreLib.features.filters`, shared with the
pyradiomics path), ``firstorder``, ``shape``, ``glcm``, ``glrlm``,
``glszm``, ``gldm`` and ``ngtdm`` compute one feature class each, and ``backend`` puts them
together: ``extract_case_features`` has the contract of
:func:`DeepRadScoreLib.features.radiomics.extract_case_features`.
"""

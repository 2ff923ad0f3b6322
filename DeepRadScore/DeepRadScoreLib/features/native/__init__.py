"""A pyradiomics-equal radiomics backend in numpy, scipy and PyWavelets (no pyradiomics import).

It returns pyradiomics' own numbers (relative 1e-6) for every pyradiomics setting and image
type (LBP2D and LBP3D in ``lbp``, without scikit-image or trimesh), and is the default backend. ``params``
reads and validates a pyradiomics parameter set, ``preprocess`` reproduces pyradiomics'
normalisation, resampling, mask correction, crops, mask checks, resegmentation and
discretisation (the filters are :mod:`DeepRadScoreLib.features.filters`, shared with the
pyradiomics path), ``firstorder``, ``shape``, ``glcm``, ``glrlm``,
``glszm``, ``gldm`` and ``ngtdm`` compute one feature class each, and ``backend`` puts them
together: ``extract_case_features`` has the contract of
:func:`DeepRadScoreLib.features.radiomics.extract_case_features`.
"""

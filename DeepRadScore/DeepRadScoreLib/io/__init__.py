"""Reading what a user gives us: CT images, tumour masks (NIfTI, NRRD, MHA, DICOM series, Slicer
``.seg.nrrd``, DICOM RTSTRUCT and SEG) and cohort manifests, each either read correctly onto the
CT's grid or refused with an :class:`~DeepRadScoreLib.errors.InputError` that names the file.

``grid`` (voxel-grid rules) is the lowest layer; ``dicom`` and ``images`` build on it;
``manifest`` reads the cohort CSV.
"""

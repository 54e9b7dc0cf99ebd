"""Decoding and normalising images; importing this package registers the DICOM and NIfTI readers."""

from echocaptions.imaging import dicom, nifti  # noqa: F401

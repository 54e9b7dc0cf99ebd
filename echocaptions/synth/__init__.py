"""Ultrasound phantom: B-mode frames, reports, and fake sources in the real public layouts."""

from echocaptions.synth.layouts import LAYOUT_ORGANS, make_phantom
from echocaptions.synth.reports import SyntheticReport, make_report, sample_findings

__all__ = ["LAYOUT_ORGANS", "SyntheticReport", "make_phantom", "make_report", "sample_findings"]
from echocaptions.synth import (  # noqa: E402, F401
    layout_breast_lesions_usg,
    layout_bus_bra,
    layout_covid_blues,
    layout_dicom_folder,
    layout_fatty_liver,
    layout_liver_fibrosis,
    layout_nifti_folder,
    layout_stanford_thyroid,
    layout_tn3k,
)

"""Ultrasound phantom: B-mode frames, reports, and fake sources in the real public layouts."""

from echocaptions.synth.layouts import LAYOUT_ORGANS, make_phantom
from echocaptions.synth.reports import SyntheticReport, make_report, sample_findings

__all__ = ["LAYOUT_ORGANS", "SyntheticReport", "make_phantom", "make_report", "sample_findings"]

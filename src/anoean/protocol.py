"""The paper's experimental protocol (public path; it lives in :mod:`anoean.data.protocol`)."""

from anoean.data.protocol import NAMES, Split, make_split, make_split_from

__all__ = ["NAMES", "Split", "make_split", "make_split_from"]

"""Small helpers with HuggingFace's names: `bertkit.utils.logging` (set_verbosity_error, get_logger, ...).

    from bertkit import utils
    utils.logging.set_verbosity_error()   # silence the "Some weights ... were not used" report
"""
from . import logging

__all__ = ["logging"]

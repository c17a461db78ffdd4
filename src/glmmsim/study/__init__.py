"""Study specs (YAML files that are data, never code) and the writers of simulated data."""

from .spec import SpecError, Study, load_spec, parse_spec
from .writers import DATA_FORMATS, data_format, write_data

__all__ = ["SpecError", "Study", "load_spec", "parse_spec", "DATA_FORMATS", "data_format", "write_data"]

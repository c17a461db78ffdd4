"""Study specs (YAML files that are data, never code) and the writers of simulated data."""

from .spec import SpecError, Study, load_spec, parse_spec, set_value
from .writers import DATA_FORMATS, data_format, write_data

__all__ = ["SpecError", "Study", "load_spec", "parse_spec", "set_value", "DATA_FORMATS", "data_format", "write_data"]

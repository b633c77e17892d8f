"""Declarative configuration: load a YAML file, validate it, plan the changes, apply them, export.

The file describes upstreams with their targets, API permissions, roles with their
permissions, and routes with their role rules. docs/configuration.md documents the
format. Validation runs each entry through the models' own full_clean(), so the file
and the admin console accept and reject the same values. Applying writes only the
rows that differ, so applying a file that already matches changes nothing and leaves
the configuration version as it is.

The package has one module per concept:

- loading: YAML loading and the type checks of raw values.
- parsing: validation of the document into the desired Configuration.
- database: the Configuration stored in the database.
- applying: the plan of changes and the writes that carry it out.
- exporting: the stored configuration as YAML text.
- specs: the types that the other modules share.

WRITERS is re-exported as the same dict object that apply_change reads, so a test
that patches an entry here changes what apply_change calls.
"""

from routing.declarative.applying import WRITERS, apply_change, apply_configuration, plan_changes
from routing.declarative.database import read_configuration
from routing.declarative.exporting import export_configuration
from routing.declarative.loading import load_yaml
from routing.declarative.parsing import ConfigurationParser
from routing.declarative.specs import (
    ADD,
    CHANGE,
    DELETE,
    ApplyResult,
    Change,
    Configuration,
    ConfigurationError,
    PlanChanged,
)

__all__ = [
    "ADD",
    "CHANGE",
    "DELETE",
    "WRITERS",
    "ApplyResult",
    "Change",
    "Configuration",
    "ConfigurationError",
    "ConfigurationParser",
    "PlanChanged",
    "apply_change",
    "apply_configuration",
    "export_configuration",
    "load_yaml",
    "plan_changes",
    "read_configuration",
]

"""Operator factories for the test registry, one module per operator family.

Every module in this package is imported, so a new family only adds a file.
"""

import importlib
import pkgutil

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")

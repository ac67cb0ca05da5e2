"""The simulator's data-file errors, on the product's one loading toolkit (proxy.config.loading).

Both of the simulator's data files go through ``proxy.config.loading``: its own code tables
(``vendor_codes.yaml``, codes.py) and an outcome mix (``--mix``, outcome.py). Errors::

    LoadError             (proxy.config.loading)
    └── SimDataError      a simulator data file; one ``file: key: reason`` per problem
        ├── CodesError    the code tables are invalid (codes.py)
        └── MixError      the mix file is invalid (outcome.py)
"""

from proxy.config.loading import Checker, LoadError, join_key, read_yaml


class SimDataError(LoadError):
    """A simulator data file is invalid; ``errors`` holds one ``file: key: reason`` each."""


__all__ = ["Checker", "SimDataError", "join_key", "read_yaml"]

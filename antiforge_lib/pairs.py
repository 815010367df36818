"""The old path of :mod:`antiforge_lib.data.pairs`: the same module object, so attributes set on one are on both."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("antiforge_lib.data.pairs")

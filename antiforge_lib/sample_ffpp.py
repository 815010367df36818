"""The old path of :mod:`antiforge_lib.data.sample`: the same module object, so attributes set on one are on both."""

import importlib
import sys

if __name__ == "__main__":  # python -m antiforge_lib.sample_ffpp {fetch,build}, as before
    importlib.import_module("antiforge_lib.data.sample")._main()
else:
    sys.modules[__name__] = importlib.import_module("antiforge_lib.data.sample")

"""Old import path, kept so existing code and notebooks work: the module is ``connlab.runtime.cpu_memory``."""

import sys

from connlab.runtime import cpu_memory as _module

sys.modules[__name__] = _module

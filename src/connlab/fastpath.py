"""Old import path, kept so existing code and notebooks work: the module is ``connlab.runtime.fastpath``."""

import sys

from connlab.runtime import fastpath as _module

sys.modules[__name__] = _module

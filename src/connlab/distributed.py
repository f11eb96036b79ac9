"""Old import path, kept so existing code and notebooks work: the module is ``connlab.runtime.distributed``."""

import sys

from connlab.runtime import distributed as _module

sys.modules[__name__] = _module

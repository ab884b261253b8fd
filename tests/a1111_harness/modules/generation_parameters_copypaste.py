"""The pre-1.8 name of :mod:`modules.infotext_utils` (the same module)."""

import sys

from modules import infotext_utils

sys.modules[__name__] = infotext_utils

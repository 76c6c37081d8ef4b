"""The old name of ``app.engine.weights`` (the weight registry), kept while callers move over: this
module *is* that one (``sys.modules`` points here to it), so a patch through either name holds.
The tables are ``app.store.models``."""

import sys

from app.engine import weights
from app.engine.weights import *  # noqa: F403  (names for type checkers)

sys.modules[__name__] = weights

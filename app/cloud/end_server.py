"""The old name of ``app.local_server.end_server``, kept while callers move over: this module *is*
that one (``sys.modules`` points here to it), so a patch through either name holds."""

import sys

from app.local_server import end_server
from app.local_server.end_server import *  # noqa: F403  (names for type checkers)

sys.modules[__name__] = end_server

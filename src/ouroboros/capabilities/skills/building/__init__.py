"""Building tools in a jail: source checks, the bubblewrap jail, the shared Zig cache.

`builders.py` (one level up) is the facade; see docs/skills.md ("Builds are jailed") and
docs/security.md ("Builds and the sandbox").
"""

from .includes import check_sources
from .jail import OPT_OUT_ENV, BuildLimits, BuildRoom, jail_mode
from .sources import read_tree

__all__ = ["OPT_OUT_ENV", "BuildLimits", "BuildRoom", "check_sources", "jail_mode", "read_tree"]

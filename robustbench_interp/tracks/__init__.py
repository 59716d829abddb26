"""The benchmark's tracks (SPEC section 6), one file each, in a registry.

:func:`get_track` turns a name into its :class:`Track` (an unknown name is an error naming the close
ones, never a fall-back); installed packages add tracks through the entry-point group
``robustbench_interp.tracks``. A built-in track is a module of this package that registers its
:class:`Track` (``@register_track``); adding one is adding its file (with its data and models).
"""

from __future__ import annotations

from robustbench_interp.registry import import_builtins
from robustbench_interp.tracks.base import ADV_SUFFIX, Schedule, Track
from robustbench_interp.tracks.registry import (
           ENTRY_POINT_GROUP,
           TRACKS,
           get_track,
           list_tracks,
           register_track,
)

#: The built-in tracks' modules (each registers itself on import).
BUILTIN_MODULES = import_builtins(__name__, __path__, infrastructure=("base", "registry"))

__all__ = ["ADV_SUFFIX", "BUILTIN_MODULES", "ENTRY_POINT_GROUP", "TRACKS", "Schedule", "Track", "get_track",
           "list_tracks", "register_track"]

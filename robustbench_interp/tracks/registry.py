"""The track registry: the built-in tracks (one file each) and installed ones (entry-point group
``robustbench_interp.tracks``), looked up by name."""

from __future__ import annotations

import difflib

from robustbench_interp.errors import ConfigError, PluginImportError, UnknownNameError
from robustbench_interp.registry import Registry
from robustbench_interp.tracks.base import Track

ENTRY_POINT_GROUP = "robustbench_interp.tracks"
TRACKS: Registry[object] = Registry("track", ENTRY_POINT_GROUP)


def register_track(track: type[Track] | Track) -> type[Track] | Track:
    """Register a :class:`Track` subclass (or instance) under its ``name``; usable as a decorator."""
    instance = track() if isinstance(track, type) else track
    if not isinstance(instance, Track) or not instance.name:
        raise ConfigError(f"{track!r} is not a Track subclass with a name")
    TRACKS.add(instance.name, instance, origin=type(instance).__module__)
    return track


def get_track(name: str | Track) -> Track:
    """The registered track ``name``; an unknown name is an UnknownNameError naming the close ones."""
    if isinstance(name, Track):
        return name
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a track is a registered name such as 'tiny', got {name!r}")
    if name not in TRACKS:
        close = difflib.get_close_matches(name, TRACKS.names(), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        names = ", ".join(repr(n) for n in list_tracks())
        raise UnknownNameError(f"unknown track {name!r}.{hint} available tracks: {names}.")
    track = TRACKS.get(name)
    if isinstance(track, type) and issubclass(track, Track):  # an entry point naming the class
        track = track()
    if not isinstance(track, Track):
        raise PluginImportError(f"track {name!r} is a {type(track).__name__}, not a robustbench_interp Track")
    return track


def list_tracks() -> list[str]:
    """The registered tracks' names (tiny first; a broken plug-in's last)."""

    def order(name: str) -> tuple[int, str]:
        try:
            return get_track(name).order, name
        except PluginImportError:
            return 1_000_000, name

    return sorted(TRACKS.names(), key=order)

"""Persistence of the exporter's state across restarts: the file format and its I/O.

:mod:`exporter.persist.plain` turns numpy arrays into plain values and marks the long lists
that are encoded a slice at a time (the owners' ``to_state()`` use it; pure, no msgspec),
:mod:`exporter.persist.fileformat` encodes a whole snapshot as a versioned file and reads it
back, :mod:`exporter.persist.files` writes it atomically and moves a bad one aside.
:mod:`exporter.persistence` ties them to the store.
"""

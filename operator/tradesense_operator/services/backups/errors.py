"""The error every backup format raises when stored data does not match its manifest.

Its own module so the format modules (zstd_codec, directory_format) and the pipeline share it without
importing each other; it must hold nothing else.
"""

from __future__ import annotations


class IntegrityError(Exception):
    """A stored backup does not match its manifest (checksum, size or truncated content)."""

"""Errors raised by tickwise.

The tree::

    TickwiseError
    ├── ConfigError            a setting is missing or malformed (names the setting)
    ├── InputError             bad user input: a file, a symbol, a SQL statement, a parameter
    │   ├── ReadOnlyQueryError a write statement sent to a read-only query endpoint
    │   └── DataError          data too short, constant, or otherwise unusable for a model
    ├── BackendError           a bus or store backend failed after bounded retries
    └── NotFoundError          a symbol, model or table that does not exist

Every message says what was expected and what was found. The CLI prints the message
and exits non-zero; the API maps it to a 4xx response.
"""

from __future__ import annotations


class TickwiseError(Exception):
    """Root of every error tickwise raises on purpose."""


class ConfigError(TickwiseError):
    """A setting is missing or malformed."""


class InputError(TickwiseError):
    """Bad user input."""


class ReadOnlyQueryError(InputError):
    """A statement that would change data was sent where only reads are allowed."""


class DataError(InputError):
    """Data that cannot be used for the requested computation."""


class BackendError(TickwiseError):
    """A backend (bus, warehouse, lake) failed after bounded retries."""


class NotFoundError(TickwiseError):
    """Something asked for does not exist."""

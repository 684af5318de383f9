"""Validation, event-time bars, and the runners that wire bus, pipeline and warehouse."""

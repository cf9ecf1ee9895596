"""The fault suite runs on the integration tier's in-process stack, seen as a client sees it."""

from tests.integration.conftest import clock, stack

__all__ = ["clock", "stack"]

"""Errors of the local stack: one root, so the CLI turns any of them into a message and exit code 1."""

from __future__ import annotations

__all__ = ["StackError", "ServiceDidNotStart", "TopicMismatchError"]


class StackError(Exception):
    """Something about the local stack needs the operator's attention; the message says what."""


class ServiceDidNotStart(StackError):
    """A service did not answer in time or exited; the message carries its log's tail."""


class TopicMismatchError(StackError):
    """An existing topic disagrees with its declaration in streams/topics.py."""

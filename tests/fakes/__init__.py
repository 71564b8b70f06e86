"""Test doubles that speak real protocols over real sockets (usable by out-of-process services)."""

from .ollama import Reply, ScriptedOllama

__all__ = ["Reply", "ScriptedOllama"]

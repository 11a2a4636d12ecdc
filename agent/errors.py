"""The agent's one error hierarchy: what went wrong, said in one paragraph, with an exit code.

Every error a person can cause or fix (a config file, a model file, a missing credential, a
serial port that is not there) is an :class:`AgentError`.  The CLI prints its paragraph and
exits with its code, never a traceback; the runner turns the same errors into fault events
while it runs.  Packages raise the subclass of their domain; nothing below the CLI imports
the CLI to find an error type.
"""

from __future__ import annotations

__all__ = [
    "EXIT_BAD_INPUT",
    "AgentError",
    "AssetError",
    "BellError",
    "ConfigError",
    "CredentialError",
    "ModelError",
    "SpoolError",
    "UserError",
]

EXIT_BAD_INPUT = 2


class AgentError(Exception):
    """Base of the agent's errors: ``str(exc)`` is the paragraph, ``exit_code`` the code."""

    exit_code: int = EXIT_BAD_INPUT

    def paragraph(self) -> str:
        """The message as one paragraph (line breaks kept only for per-problem reports)."""
        return str(self)


class UserError(AgentError):
    """Bad input from a person on the command line."""


class ConfigError(AgentError):
    """A configuration that cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(self.report())

    def report(self) -> str:
        head = f"{self.source}: {len(self.problems)} problem(s) in the configuration"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])

    def paragraph(self) -> str:
        return self.report()


class ModelError(AgentError):
    """A detection model that cannot be used (missing, not ONNX, an unknown output layout)."""


class AssetError(AgentError):
    """A default asset (model, sample video) that cannot be fetched or fails its checksum."""


class BellError(AgentError):
    """The bell's own hardware cannot be used (its input or outputs)."""


class SpoolError(AgentError):
    """The spool cannot store or read (disk full, read-only, damaged file)."""


class CredentialError(AgentError):
    """A secret file (password, key, certificate) is missing or unreadable; names the file."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path

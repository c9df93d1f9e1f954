"""Commands a container class implements for ``kubectl exec``; the lab runs no other command.

A container offers commands with ``run_command(argv, stdin)``; ``CurlContainer`` (Istio's ``curl`` and ``sleep``
samples, image ``curlimages/curl``) implements ``curl`` (``runtime/curl.py``), also as ``sh -c 'curl …'``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from meshlab.mesh.transport import Response
from meshlab.runtime import curl
from meshlab.runtime.container import Idle

SHELLS = ("sh", "/bin/sh", "bash", "/bin/bash")
SHELL_OPERATORS = set("|&;<>()$`\\\"'*?[#~=%")


@dataclass
class CommandResult:
    """A finished command: exit code and output."""

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""


class NotImplementedCommand(Exception):
    """The container runs no such command in the lab (the message says which ones it does)."""


def simple_shell_command(argv: list[str]) -> list[str] | None:
    """``sh -c 'curl -s x'`` → ``["curl", "-s", "x"]`` when the script is one plain command; else None."""
    if len(argv) == 3 and argv[0] in SHELLS and argv[1] == "-c":
        try:
            words = shlex.split(argv[2])
        except ValueError:
            return None
        if words and not any(set(w) & SHELL_OPERATORS for w in shlex.split(argv[2], posix=False)
                             if not (w[:1] in "'\"" and w[-1:] == w[:1])):
            return words
    return None


class CurlContainer(Idle):
    """Istio's ``curl``/``sleep`` sample container: idles (its command sleeps) and runs ``curl`` under exec."""

    COMMANDS = ("curl",)

    def _send(self, host: str, port: int, method: str, path: str, headers: dict[str, str],
              body: bytes) -> Response:
        from meshlab.mesh.podnet import call

        return call(self.ctx.lab, self.ctx.pod_ip, self.ctx.namespace, host, port, method, path, headers, body)

    def run_command(self, argv: list[str], stdin: bytes = b"") -> CommandResult:
        """Run ``argv``; NotImplementedCommand for anything but curl."""
        words = simple_shell_command(argv) or argv
        if not words or words[0].rsplit("/", 1)[-1] not in self.COMMANDS:
            raise NotImplementedCommand(
                f"the lab runs no {shlex.join(argv)!r} in container {self.ctx.name!r}: of this image it runs only "
                + ", ".join(self.COMMANDS))
        tag = self.ctx.image.rsplit(":", 1)[-1] if ":" in self.ctx.image.rsplit("/", 1)[-1] else ""
        version = tag if tag[:1].isdigit() else "8.16.0"
        code, out, err = curl.run(words[1:], self._send, version)
        return CommandResult(code, out, err)

"""Commands a container class implements for ``kubectl exec``; the lab runs no other command.

A container offers commands with ``run_command(argv, stdin)``; ``CurlContainer`` (Istio's ``curl`` and ``sleep``
samples, image ``curlimages/curl``) implements ``curl`` (``runtime/curl.py``), also as ``sh -c 'curl …'``;
so does Bookinfo's ratings image, which has curl.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from meshlab.mesh.transport import Response
from meshlab.runtime import curl
from meshlab.runtime.container import Container, ContainerContext, Idle

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


def run_curl(ctx: ContainerContext, argv: list[str], commands: tuple[str, ...] = ("curl",)) -> CommandResult:
    """Run ``argv`` (curl, or ``sh -c`` of one curl command) from the container's pod; NotImplementedCommand
    for anything else."""
    words = simple_shell_command(argv) or argv
    if not words or words[0].rsplit("/", 1)[-1] not in commands:
        raise NotImplementedCommand(
            f"the lab runs no {shlex.join(argv)!r} in container {ctx.name!r}: of this image it runs only "
            + ", ".join(commands))
    tag = ctx.image.rsplit(":", 1)[-1] if ":" in ctx.image.rsplit("/", 1)[-1] else ""
    version = tag if tag[:1].isdigit() else "8.16.0"

    def send(host: str, port: int, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        from meshlab.mesh.podnet import call

        return call(ctx.lab, ctx.pod_ip, ctx.namespace, host, port, method, path, headers, body)

    code, out, err = curl.run(words[1:], send, version)
    return CommandResult(code, out, err)


class CurlContainer(Idle):
    """Istio's ``curl``/``sleep`` sample container: idles (its command sleeps) and runs ``curl`` under exec."""

    def run_command(self, argv: list[str], stdin: bytes = b"") -> CommandResult:
        """Run ``argv``; NotImplementedCommand for anything but curl."""
        return run_curl(self.ctx, argv)


def runner_for(obj: Container | None) -> Callable[[list[str]], CommandResult] | None:
    """How ``kubectl exec`` runs a command in this container: None when its class implements none. Bookinfo's
    ratings image has curl (Istio's Bookinfo page checks the app with ``kubectl exec … -c ratings -- curl``)."""
    if obj is None:
        return None
    run = getattr(obj, "run_command", None)
    if run is not None:
        return cast("Callable[[list[str]], CommandResult]", run)
    if getattr(obj, "app", None) == "ratings" and type(obj).__name__ == "BookinfoApp":
        ctx = obj.ctx
        return lambda argv: run_curl(ctx, argv)
    return None

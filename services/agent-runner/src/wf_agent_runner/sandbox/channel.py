"""The runner's end of the in-container command helper (`inside.py`): one `docker exec -i` per
sandbox, kept open, over which each `run` is a request line and a stream of frames back.

The exec's stream is the engine's multiplexed one (8-byte headers: stream 1 = the helper's stdout,
which carries the frames, stream 2 = its stderr, only logged). A run that is cancelled or whose kill
is not answered leaves the channel `broken`: the sandbox then replaces its container.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import struct
from dataclasses import dataclass
from importlib import resources
from typing import Any

from wf_agent_runner.sandbox.base import SANDBOX_HOME, WORKDIR, StreamCapture, sandbox_env

log = logging.getLogger(__name__)

START_SECONDS = 20.0  # the helper's python3 start, on a loaded machine
KILL_SECONDS = 5.0  # after a kill request, how long the helper has to report the command over
FRAME = struct.Struct(">cII")  # the helper's frames: kind, run id, payload length
MUX = struct.Struct(">BxxxL")  # the engine's stream frames: stream, payload length


class ChannelBroken(Exception):
    """The helper is gone or out of step; the sandbox's container must be replaced."""


@dataclass(frozen=True)
class Finished:
    code: int | None
    killed: bool
    strays: int  # processes the command left behind (killed)
    left: int  # processes that could not be killed
    error: str


def helper_source() -> str:
    return resources.files("wf_agent_runner.sandbox").joinpath("inside.py").read_text(encoding="utf-8")


class HelperChannel:
    def __init__(self, sock: Any) -> None:
        self._sock = sock  # the SDK's wrapper; it owns the raw socket below
        self._raw: socket.socket = sock._sock
        self._raw.setblocking(False)
        self._mux = b""
        self._frames = b""
        self._ids = 0
        self.broken = False
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, api: Any, container_id: str, user: str) -> HelperChannel:
        """Start the helper in the container and wait for it to say it is ready."""
        exec_id = (
            await asyncio.to_thread(
                api.exec_create,
                container_id,
                ["python3", "-c", helper_source()],
                stdin=True,
                stdout=True,
                stderr=True,
                workdir=WORKDIR,
                environment={**sandbox_env(), "HOME": SANDBOX_HOME},
                user=user,
            )
        )["Id"]
        sock = await asyncio.to_thread(api.exec_start, exec_id, socket=True)
        channel = cls(sock)
        try:
            async with asyncio.timeout(START_SECONDS):
                kind, _, _ = await channel._frame()
        except (TimeoutError, ChannelBroken):
            channel.close()
            raise ChannelBroken("the command helper did not start (is python3 in the image?)") from None
        if kind != b"R":
            channel.close()
            raise ChannelBroken(f"the command helper said {kind!r} instead of ready")
        return channel

    async def run(
        self,
        command: str,
        timeout: float,  # noqa: ASYNC109 - the command's limit: the helper kills it
        out: StreamCapture,
        err: StreamCapture,
    ) -> tuple[Finished, bool]:
        """Run one command; (how it finished, whether its time ran out). ChannelBroken when the helper
        does not answer; cancelling it asks the helper to kill the command and breaks the channel."""
        self._ids += 1
        rid = self._ids
        env = {**sandbox_env(), "HOME": SANDBOX_HOME}
        await self._send({"op": "run", "id": rid, "cmd": command, "env": env})
        try:
            try:
                async with asyncio.timeout(timeout):
                    return await self._until_over(rid, out, err), False
            except TimeoutError:
                await self._send({"op": "kill", "id": rid})
            try:
                async with asyncio.timeout(KILL_SECONDS):
                    return await self._until_over(rid, out, err), True
            except TimeoutError:
                raise ChannelBroken("the command helper did not stop the command") from None
        except BaseException:
            self.broken = True
            with contextlib.suppress(OSError):  # best effort: the container is replaced anyway
                self._raw.send(json.dumps({"op": "kill", "id": rid}).encode() + b"\n")
            raise

    async def _until_over(self, rid: int, out: StreamCapture, err: StreamCapture) -> Finished:
        while True:
            kind, fid, payload = await self._frame()
            if fid != rid:
                continue  # what is left of a command cancelled earlier
            if kind == b"o":
                await out.feed(payload)
            elif kind == b"e":
                await err.feed(payload)
            elif kind == b"x":
                info = json.loads(payload)
                return Finished(
                    info.get("code"),
                    bool(info.get("killed")),
                    int(info.get("strays", 0)),
                    int(info.get("left", 0)),
                    str(info.get("error", "")),
                )

    async def _send(self, request: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_sendall(self._raw, json.dumps(request).encode() + b"\n")
        except OSError as e:
            self.broken = True
            raise ChannelBroken(f"the command helper is gone: {e}") from None

    async def _frame(self) -> tuple[bytes, int, bytes]:
        while len(self._frames) < FRAME.size or len(self._frames) < FRAME.size + self._pending_size():
            await self._more()
        kind, rid, size = FRAME.unpack(self._frames[: FRAME.size])
        payload = self._frames[FRAME.size : FRAME.size + size]
        self._frames = self._frames[FRAME.size + size :]
        return kind, rid, payload

    def _pending_size(self) -> int:
        return int(FRAME.unpack(self._frames[: FRAME.size])[2])

    async def _more(self) -> None:
        """Read from the engine's stream until more of the helper's stdout has arrived."""
        loop = asyncio.get_running_loop()
        while True:
            while len(self._mux) >= MUX.size:
                stream, size = MUX.unpack(self._mux[: MUX.size])
                if len(self._mux) < MUX.size + size:
                    break
                payload = self._mux[MUX.size : MUX.size + size]
                self._mux = self._mux[MUX.size + size :]
                if stream == 1:
                    self._frames += payload
                    return
                log.debug("sandbox command helper: %s", payload.decode(errors="replace").rstrip())
            if self._closed.done():
                raise ChannelBroken("the sandbox was closed")
            recv = asyncio.ensure_future(loop.sock_recv(self._raw, 65536))
            waits: list[asyncio.Future[Any]] = [recv, self._closed]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not recv.done():
                    recv.cancel()
            if recv.cancelled():
                raise ChannelBroken("the sandbox was closed")
            try:
                data = recv.result()
            except OSError as e:
                self.broken = True
                raise ChannelBroken(f"the command helper is gone: {e}") from None
            if not data:
                self.broken = True
                raise ChannelBroken("the command helper ended")
            self._mux += data

    def close(self) -> None:
        """Close the stream (in the event loop's thread); a run waiting on it ends with ChannelBroken."""
        self.broken = True
        if not self._closed.done():
            self._closed.set_result(None)
        with contextlib.suppress(OSError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_reader(self._raw.fileno())
        with contextlib.suppress(OSError):
            self._raw.close()
        with contextlib.suppress(OSError):
            self._sock.close()

"""Work for the database thread that travels in batches.

A crowd of clients arriving (or leaving) at once would cost a database trip, a
statement and a commit each. ``Batched`` sends the items that arrive while a trip is
under way together in the next one (at most ``most``), so a crowd costs a trip per
batch; an item that finds no trip under way goes at once, from its caller's own task
(starting a writer task would cost it a loop turn). The registry's registrations
(``registry.Registrar``) and the leave's claims (``lifecycle.Departures``) use it.
"""

from __future__ import annotations

import abc
import asyncio
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class Batched(abc.ABC, Generic[Item, Outcome]):
    """Items on their way to the database thread; ``await submit(item)`` -> its outcome.

    Subclasses define ``_trip``: one database trip for a batch, returning an outcome per
    item, in order, where an exception is that item's failure (raised to its caller
    alone). A trip that raises fails its own batch only.
    """

    most = 200
    """Items per trip at most."""
    task_name = "fileshare-batch"

    def __init__(self) -> None:
        self._waiting: list[tuple[Item, asyncio.Future[Outcome]]] = []
        self._writer: asyncio.Task[None] | None = None
        # The loop whose lone item is on its trip (see submit).
        self._alone_in: asyncio.AbstractEventLoop | None = None

    @abc.abstractmethod
    async def _trip(self, items: list[Item]) -> list[Outcome | Exception]:
        """One database trip for ``items``: an outcome per item, in order."""

    async def submit(self, item: Item) -> Outcome:
        """Send ``item`` with the next trip (or alone, at once); raise its failure."""
        loop = asyncio.get_running_loop()
        if self._trip_under_way(loop):
            future: asyncio.Future[Outcome] = loop.create_future()
            self._waiting.append((item, future))
            return await future
        self._drop_stale(loop)
        self._alone_in = loop
        try:
            outcome = (await self._trip([item]))[0]
        finally:
            self._alone_in = None
            if self._waiting:
                self._start_writer(loop)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _trip_under_way(self, loop: asyncio.AbstractEventLoop) -> bool:
        if self._alone_in is loop:
            return True
        return self._writer is not None and not self._writer.done() and self._writer.get_loop() is loop

    def _drop_stale(self, loop: asyncio.AbstractEventLoop) -> None:
        """Forget waiters of another (ended) event loop: their futures cannot be answered here."""
        if self._waiting:
            self._waiting = [(item, future) for item, future in self._waiting if future.get_loop() is loop]

    def _start_writer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._drop_stale(loop)
        self._writer = loop.create_task(self._write(), name=self.task_name)

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self.most], self._waiting[self.most :]
            try:
                outcomes = await self._trip([item for item, _ in batch])
            except Exception as exc:
                outcomes = [exc] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():  # its caller stopped waiting
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

"""Render large ZPL batches on several cores: a pool of render processes.

A batch is cut into consecutive slices. This process renders the first slice while each
render process renders one of the others; the slices come back as bytes with the keys of
the glyphs they recall, and the stream is assembled here exactly as one process would
assemble it (same glyph definitions, same order): the bytes are identical, which
``tests/labels/test_zpl_pool.py`` checks.

Why a pool of long-lived processes and not a fork per batch: a ZPL batch is fast because
of its caches (glyphs rendered by FreeType, runs of text already placed), and a forked
child shares them copy-on-write. Both processes then write to those pages (CPython
touches reference counts on every read), so each copies tens of thousands of pages: a
fork per batch measured slower than one process. Render processes are started with
``spawn`` (a fresh interpreter: no lock held by another thread of this one can be
inherited, so a threaded web server may use a pool too) and keep their own caches warm
from batch to batch, as a print service does.

What a render process receives: the label texts as columns (already masked, checked when
each ``LabelData`` was built), the layout and the resolution. Nothing it holds is more
sensitive than the printed label. If a render process fails or dies, its slice is
rendered here and the pool is restarted on the next batch: a batch never loses a label.
"""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing
import os
import pickle
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate, pairwise
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Final, NamedTuple

from waybillguard.adapters.labels.glyphs import GLYPHS, gc_paused
from waybillguard.adapters.labels.zpl import (
    Columns,
    GlyphKey,
    Layout,
    assemble,
    columns_of,
    glyph_keys,
    glyphs_of,
    label_parts,
    layout_at,
    render_zpl,
)
from waybillguard.domain.label import LabelData, LabelLayout

# A batch smaller than this renders in one process: sending a slice and its bytes back
# costs about what ~150 labels take to render.
MIN_PARALLEL_LABELS: Final = 2_000
_STOP_SECONDS: Final = 5.0
_START_SECONDS: Final = 60.0
# A slice takes well under a second warm, seconds cold: past this, a render process is
# taken for hung, stopped, and its slice rendered here.
_RENDER_SECONDS: Final = 300.0
# The share of a batch this process renders, against 1.0 for each render process: a
# render process also unpickles its slice and copies it into the shared mapping, while
# this process starts on its own slice as soon as the others have theirs.
_HERE_WEIGHT: Final = 1.1
_READY: Final = b"ready"
# tmpfs; the file is private (mkstemp: 0600, unguessable name) and unlinked at once
_MEMORY_FOLDER: Final = "/dev/shm"  # noqa: S108
# Room for one slice's ZPL (~4.5 KB a label at 203 dpi, more at 300): a larger slice
# comes back through the pipe instead.
SHARED_BYTES: Final = 256 << 20


def default_processes() -> int:
    """One render process per usable core beyond this one's (at least none, at most 3)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(3, (cores or 1) - 1))


def _serve(connection: Connection, buffer_path: str) -> None:
    """A render process: slices in, ZPL and glyph keys out, until told to stop. The
    ZPL goes into the mapping shared with the parent when it fits (the parent joins it into
    the stream from there: no copy through the pipe), else down the pipe."""
    with open(buffer_path, "r+b") as file:
        shared = mmap.mmap(file.fileno(), 0)
    connection.send_bytes(_READY)
    while True:
        try:
            message = connection.recv_bytes()
        except (EOFError, OSError):
            return
        if not message:
            return
        started, known = time.thread_time(), len(GLYPHS)
        try:
            # unpickling a slice allocates as much as rendering it: the collector would
            # walk the render caches again and again
            with gc_paused():
                layout, dpi, columns = pickle.loads(message)  # noqa: S301 - our parent's
                at = layout_at(layout, dpi)
                parts, glyphs = label_parts(at, columns)
                body = b"".join(parts)  # then one copy: faster than pwritev of the parts
                size = len(body) if len(body) <= len(shared) else -1
                if size >= 0:
                    shared[:size] = body
            reply = _Reply(
                glyph_keys(glyphs), size, time.thread_time() - started, len(GLYPHS) - known
            )
            keys = pickle.dumps(tuple(reply), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # reported to the parent, which renders the slice itself
            connection.send_bytes(pickle.dumps(tuple(_Reply(None, -1, 0.0, 0))))
            continue
        connection.send_bytes(keys)
        if size < 0:
            connection.send_bytes(body)


@dataclass(slots=True)
class _Worker:
    process: BaseProcess
    connection: Connection
    shared: mmap.mmap  # where it writes a slice's ZPL


def _shared_buffer(size: int) -> tuple[str, mmap.mmap]:
    """A file-backed mapping for a render process to write into (in /dev/shm where there
    is one: memory, not disk). Pages are taken only as they are written."""
    folder = _MEMORY_FOLDER if os.path.isdir(_MEMORY_FOLDER) else None
    descriptor, path = tempfile.mkstemp(prefix="wg-zpl-", dir=folder)
    try:
        os.ftruncate(descriptor, size)
        return path, mmap.mmap(descriptor, size)
    finally:
        os.close(descriptor)


class _Reply(NamedTuple):
    """A render process's answer to a slice (its ZPL is in the mapping, or follows)."""

    glyph_keys: list[GlyphKey] | None  # None: it failed, the parent renders the slice
    size: int  # bytes of ZPL in the mapping; -1: they follow through the pipe
    cpu: float  # seconds of CPU the slice took
    new_glyphs: int  # glyphs it had to render first (its font cache warming)


@dataclass(slots=True)
class PoolStats:
    """What the last batch cost: how many processes rendered it, CPU seconds here and
    in the render processes, and how many glyphs the render processes had not met
    before (for ``bench labels``)."""

    processes: int = 1
    cpu_here: float = 0.0
    cpu_workers: float = 0.0
    new_glyphs_workers: int = 0


class ZplPool:
    """``render(datas, layout, dpi)`` gives the bytes of ``render_zpl``, using
    ``processes`` extra render processes for batches of at least
    :data:`MIN_PARALLEL_LABELS` labels. The processes start on the first such batch;
    ``close()`` (or leaving a ``with`` block) stops them. One batch at a time: a batch
    that finds the pool busy (another thread) renders in its own thread alone."""

    def __init__(self, processes: int | None = None) -> None:
        self.processes = default_processes() if processes is None else max(0, processes)
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self.last = PoolStats()

    def __enter__(self) -> ZplPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def render(self, datas: Iterable[LabelData], layout: LabelLayout, dpi: int = 203) -> bytes:
        labels = list(datas)
        if not labels:
            raise ValueError("no labels to render")
        if self.processes < 1 or len(labels) < MIN_PARALLEL_LABELS:
            return self._alone(labels, layout, dpi)
        if not self._lock.acquire(blocking=False):
            return self._alone(labels, layout, dpi)
        try:
            return self._shared(labels, layout, dpi)
        finally:
            self._lock.release()

    def _alone(self, labels: list[LabelData], layout: LabelLayout, dpi: int) -> bytes:
        started = time.thread_time()
        zpl = render_zpl(labels, layout, dpi)
        self.last = PoolStats(1, time.thread_time() - started)
        return zpl

    def _shared(self, labels: list[LabelData], layout: LabelLayout, dpi: int) -> bytes:
        started = time.thread_time()
        at = layout_at(layout, dpi)  # checks the resolution before anything is sent
        workers = self._started()
        stats = PoolStats(len(workers) + 1)
        with gc_paused():  # the collector would walk the render caches again and again
            zpl = self._split(at, labels, workers, stats)
        stats.cpu_here = time.thread_time() - started
        self.last = stats
        return zpl

    def _split(
        self, at: Layout, labels: list[LabelData], workers: list[_Worker], stats: PoolStats
    ) -> bytes:
        shares = _shares(len(labels), len(workers) + 1)
        sent: list[tuple[_Worker | None, Columns]] = []
        for worker, (start, end) in zip(workers, shares[1:], strict=True):
            part = columns_of(labels[start:end])  # sent first: they start sooner
            sent.append((self._send(worker, (at.layout, at.dpi, part)), part))
        start, end = shares[0]
        parts, glyphs = label_parts(at, columns_of(labels[start:end]))
        # joined now, while the render processes work: what is left after they answer
        # is one copy of each slice into the stream
        bodies: list[Iterable[bytes | memoryview]] = [(b"".join(parts),)]
        for target, part in sent:
            body = self._receive(target, glyphs, stats) if target else None
            if body is None:  # the process failed: render its slice here
                more_parts, more = label_parts(at, part)
                glyphs |= more
                body = b"".join(more_parts)
            bodies.append((body,))
        return assemble(at, bodies, glyphs)

    def _started(self) -> list[_Worker]:
        alive = [w for w in self._workers if w.process.is_alive()]
        if len(alive) == len(self._workers) == self.processes:
            return alive
        self.close()
        context = multiprocessing.get_context("spawn")
        starting = []
        for _ in range(self.processes):
            path, shared = _shared_buffer(SHARED_BYTES)
            here, there = context.Pipe()
            process = context.Process(target=_serve, args=(there, path), daemon=True)
            process.start()
            there.close()
            starting.append((path, _Worker(process, here, shared)))
        for path, worker in starting:
            # the file goes once the process has mapped it: nothing is left behind
            ready = worker.connection.poll(_START_SECONDS) and worker.connection.recv_bytes()
            os.unlink(path)
            if ready == _READY:
                self._workers.append(worker)
            else:
                self._discard(worker)
        return self._workers

    def _send(self, worker: _Worker, message: Any) -> _Worker | None:
        try:
            worker.connection.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            self._discard(worker)
            return None
        return worker

    def _receive(
        self, worker: _Worker, glyphs: set[Any], stats: PoolStats
    ) -> bytes | memoryview | None:
        """A slice's ZPL (a view of the shared mapping, valid until the next batch, or
        bytes from the pipe), its glyphs added to ``glyphs``; None if the process
        failed."""
        try:
            if not worker.connection.poll(_RENDER_SECONDS):  # hung: never wait forever
                raise TimeoutError
            reply = _Reply(*pickle.loads(worker.connection.recv_bytes()))  # noqa: S301
            if reply.glyph_keys is None:
                return None
            if reply.size < 0:
                body: bytes | memoryview = worker.connection.recv_bytes()
            else:
                body = memoryview(worker.shared)[: reply.size]
        except (EOFError, OSError):  # TimeoutError is an OSError
            self._discard(worker)
            return None
        glyphs |= glyphs_of(reply.glyph_keys)
        stats.cpu_workers += reply.cpu
        stats.new_glyphs_workers += reply.new_glyphs
        return body

    def _discard(self, worker: _Worker) -> None:
        """A render process that broke: stopped now, replaced on the next batch."""
        worker.connection.close()
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(_STOP_SECONDS)
        worker.shared.close()

    def close(self) -> None:
        """Stop the render processes (they also die with this process: daemons)."""
        workers, self._workers = self._workers, []
        for worker in workers:
            with contextlib.suppress(OSError):
                worker.connection.send_bytes(b"")
        for worker in workers:
            worker.process.join(_STOP_SECONDS)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(_STOP_SECONDS)
            worker.connection.close()
            worker.shared.close()


def _shares(count: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` consecutive slices of ``count`` labels, the first rendered here
    (weighted by _HERE_WEIGHT), the others even."""
    weights = list(accumulate([_HERE_WEIGHT] + [1.0] * (parts - 1)))
    ends = [round(count * w / weights[-1]) for w in weights[:-1]] + [count]
    return list(pairwise([0, *ends]))

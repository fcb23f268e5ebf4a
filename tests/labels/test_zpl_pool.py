"""A batch rendered by a pool of render processes is byte for byte the batch rendered by
one process, whatever happens to the render processes: started fresh, warm, killed
between batches or in the middle of one."""

from __future__ import annotations

import glob
import os
import signal
from collections.abc import Callable, Iterator
from multiprocessing.process import BaseProcess

import pytest

from waybillguard.adapters.labels import zpl_pool
from waybillguard.adapters.labels.zpl import render_zpl
from waybillguard.adapters.labels.zpl_pool import MIN_PARALLEL_LABELS, ZplPool
from waybillguard.domain.label import LabelData, layout, parse_size
from waybillguard.services import labels

BATCH = MIN_PARALLEL_LABELS + 401  # odd: slices of unequal size


@pytest.fixture(scope="module")
def datas() -> list[LabelData]:
    return labels.synthetic_label_data(BATCH, seed=4242)


@pytest.fixture(scope="module")
def pool() -> Iterator[ZplPool]:
    with ZplPool(1) as shared:
        yield shared


def _after_each_send(monkeypatch: pytest.MonkeyPatch, fault: Callable[[BaseProcess], None]) -> None:
    """Injects ``fault`` into a render process right after it has been sent its slice."""
    send = ZplPool._send

    def send_then_fault(self: ZplPool, worker: zpl_pool._Worker, message: object) -> object:
        sent = send(self, worker, message)
        fault(worker.process)
        return sent

    monkeypatch.setattr(ZplPool, "_send", send_then_fault)


def _leftover_buffers() -> list[str]:
    return glob.glob("/dev/shm/wg-zpl-*")


@pytest.mark.parametrize(("size", "dpi"), [("100x180", 203), ("76x130", 300), ("100x150", 203)])
def test_a_pool_renders_the_bytes_of_one_process(
    pool: ZplPool, datas: list[LabelData], size: str, dpi: int
) -> None:
    shape = layout(parse_size(size))
    shared = pool.render(datas, shape, dpi)
    assert pool.last.processes == 2
    assert pool.last.cpu_workers > 0
    assert shared == render_zpl(datas, shape, dpi)
    assert shared.count(b"^XA^XF") == len(datas)


def test_a_warm_pool_renders_new_labels_the_same(pool: ZplPool) -> None:
    shape = layout(parse_size("100x180"))
    for seed in (1, 2):
        batch = labels.synthetic_label_data(BATCH, seed=seed)
        assert pool.render(batch, shape, 203) == render_zpl(batch, shape, 203)


def test_a_small_batch_is_rendered_here(pool: ZplPool, datas: list[LabelData]) -> None:
    shape = layout(parse_size("100x180"))
    small = datas[: MIN_PARALLEL_LABELS - 1]
    assert pool.render(small, shape, 203) == render_zpl(small, shape, 203)
    assert pool.last.processes == 1


def test_a_render_process_killed_between_batches_is_replaced(datas: list[LabelData]) -> None:
    shape = layout(parse_size("100x180"))
    with ZplPool(1) as pool:
        first = pool.render(datas, shape, 203)
        (worker,) = pool._workers
        worker.process.kill()
        worker.process.join(10)
        assert pool.render(datas, shape, 203) == first
        assert pool.last.processes == 2
        assert pool._workers[0].process.pid != worker.process.pid


def test_a_render_process_dying_mid_batch_loses_no_label(
    datas: list[LabelData], monkeypatch: pytest.MonkeyPatch
) -> None:
    shape = layout(parse_size("100x180"))
    expected = render_zpl(datas, shape, 203)
    _after_each_send(monkeypatch, lambda process: process.kill())  # before it can answer
    with ZplPool(1) as pool:
        assert pool.render(datas, shape, 203) == expected
        assert pool.last.cpu_workers == 0  # its slice was rendered here


def test_a_bad_resolution_is_refused_before_anything_is_sent(datas: list[LabelData]) -> None:
    with ZplPool(1) as pool, pytest.raises(ValueError, match="203 or 300 dpi"):
        pool.render(datas, layout(parse_size("100x180")), 150)
    assert not pool._workers


def test_closing_stops_the_processes_and_leaves_no_file(datas: list[LabelData]) -> None:
    before = set(_leftover_buffers())
    pool = ZplPool(2)
    pool.render(datas, layout(parse_size("100x180")), 203)
    processes = [worker.process for worker in pool._workers]
    assert len(processes) == 2
    assert set(_leftover_buffers()) == before  # unlinked once mapped
    pool.close()
    assert all(not process.is_alive() for process in processes)
    assert not pool._workers


def test_an_empty_batch_is_refused() -> None:
    with ZplPool(1) as pool, pytest.raises(ValueError, match="no labels"):
        pool.render([], layout(parse_size("100x180")), 203)


def test_no_processes_means_this_one(datas: list[LabelData]) -> None:
    shape = layout(parse_size("100x180"))
    with ZplPool(0) as pool:
        assert pool.render(datas, shape, 203) == render_zpl(datas, shape, 203)
        assert pool.last.processes == 1
        assert not pool._workers


def test_the_pool_reports_its_render_processes_warming(datas: list[LabelData]) -> None:
    shape = layout(parse_size("100x180"))
    with ZplPool(1) as pool:
        pool.render(datas, shape, 203)
        assert pool.last.new_glyphs_workers > 0  # a fresh process renders the font first
        pool.render(datas, shape, 203)
        assert pool.last.new_glyphs_workers == 0


def test_a_hung_render_process_is_stopped_and_its_slice_rendered_here(
    datas: list[LabelData], monkeypatch: pytest.MonkeyPatch
) -> None:
    shape = layout(parse_size("100x180"))
    expected = render_zpl(datas, shape, 203)

    def stop(process: BaseProcess) -> None:
        assert process.pid is not None
        os.kill(process.pid, signal.SIGSTOP)  # alive, never answers

    monkeypatch.setattr(zpl_pool, "_RENDER_SECONDS", 0.5)
    _after_each_send(monkeypatch, stop)
    with ZplPool(1) as pool:
        assert pool.render(datas, shape, 203) == expected
        assert pool.last.cpu_workers == 0  # its slice was rendered here
        assert not any(worker.process.is_alive() for worker in pool._workers)  # stopped

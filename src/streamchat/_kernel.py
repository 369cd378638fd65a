"""The widget's hooks into the kernel: which cell made it, and the displays it was shown in.

Only these touch IPython and ipykernel; outside a kernel (a script, a test) each is a
quiet no-op.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Protocol

__all__ = ["Displays", "replace_in_cell"]


class _Closable(Protocol):
    def close(self) -> None: ...


# Widgets made by each notebook cell, with the execution that made them.
_BY_CELL: dict[str, tuple[str, list[weakref.ref[_Closable]]]] = {}


def replace_in_cell(widget: _Closable) -> None:
    """Re-running a cell closes the widgets its previous run made, and their streams.

    JupyterLab and Notebook 7 put the cell's id in each execute request's metadata;
    widgets made by an older execution of the same cell are gone from the page, so
    their answers must not keep a connection (and a thread's attention) open.
    Other front ends send no cell id, and then nothing is closed.
    """
    parent = _execute_parent()
    cell = (parent.get("metadata") or {}).get("cellId")
    if not cell:
        return
    run = parent["header"]["msg_id"]
    previous_run, widgets = _BY_CELL.get(cell, (run, []))
    if previous_run != run:
        for old in widgets:
            if (stale := old()) is not None:
                stale.close()
        widgets = []
    _BY_CELL[cell] = (run, [*widgets, weakref.ref(widget)])


def _execute_parent() -> dict[str, Any]:
    """The execute request being run by the kernel, or {} outside a kernel."""
    try:
        from ipykernel.kernelbase import Kernel
    except ImportError:
        return {}
    if not Kernel.initialized():
        return {}
    parent = Kernel.instance().get_parent("shell")
    return parent if parent.get("header", {}).get("msg_type") == "execute_request" else {}


class Displays:
    """The displays a widget was shown in, to rewrite them (its static copy) later.

    A display made with a display id can be updated from any thread, at any time:
    the front end rewrites that output, and the notebook saves what it shows.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handles: list[Any] = []

    def show(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        from IPython.display import display

        handle = display(data, metadata=metadata, raw=True, display_id=True)
        if handle is not None:
            with self._lock:
                self._handles.append(handle)

    def update(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        with self._lock:
            handles = list(self._handles)
        for handle in handles:
            handle.update(data, metadata=metadata, raw=True)

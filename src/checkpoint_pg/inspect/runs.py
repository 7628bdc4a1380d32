"""Cutting a thread into runs, and the ``stream_mode="updates"`` chunks each streamed,
rebuilt from storage. Pure functions (no I/O) over `checkpoint_pg.inspect.model`
records that `naming.annotate` has named.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from checkpoint_pg.inspect.model import INTERRUPT, CheckpointRecord, Run, TaskRecord, task_update

__all__ = ["split_runs"]


# -- runs ------------------------------------------------------------------------------


def _interrupt_chunk(task: TaskRecord) -> dict[str, Any]:
    values: list[Any] = []
    for v in task.interrupts:
        if isinstance(v, Sequence) and not isinstance(v, (str, bytes)):
            values.extend(v)
        else:
            values.append(v)
    return {INTERRUPT: tuple(values)}


def _resumed_at(cp: CheckpointRecord, child: CheckpointRecord | None) -> bool:
    """A later call resumed the graph at ``cp`` (LangGraph notes it in the child's versions_seen)."""
    if child is None:
        return False
    mine = (cp.doc.get("versions_seen") or {}).get(INTERRUPT)
    theirs = (child.doc.get("versions_seen") or {}).get(INTERRUPT)
    return theirs is not None and theirs != mine


def _events(task: TaskRecord) -> tuple[list[tuple[int, str]], bool]:
    """(run index at the checkpoint, "done" | "interrupt" | "lost"), and whether all is known."""
    if task.interrupts:
        k = len(task.resumes)
        n_int = max(k, 1) if task.done else k + 1
        events = [(r, "lost") for r in range(n_int - 1)] + [(n_int - 1, "interrupt")]
        if task.done:
            events.append((n_int, "done"))
        return events, n_int == 1
    if task.error is not None:
        return ([(1, "done")] if task.done else []), True
    return ([(0, "done")] if task.done else []), True


def split_runs(checkpoints: Sequence[CheckpointRecord], keys: str | Sequence[str]) -> list[Run]:
    """Cut one namespace's checkpoints (oldest first) into runs and rebuild their chunks.

    A run starts with new input (an ``input`` checkpoint), after ``update_state``
    or a fork, and at each resume of an interrupted or failed checkpoint. Within a
    checkpoint, chunks come in task-path order (live, parallel tasks stream in the
    order they finish), functional-API ``@task`` calls before the task that made
    them. ``update_state`` streams nothing. Call `annotate` on the checkpoints first.
    """
    runs: list[Run] = []
    children: dict[str, CheckpointRecord] = {}
    for cp in checkpoints:
        if cp.parent_id is not None and cp.source == "loop":
            children.setdefault(cp.parent_id, cp)
    # made by update_state, not by a run: as_node="__input__" makes an "input" one
    edited = {cp.edit_child for cp in checkpoints if cp.edit_child}
    current: Run | None = None

    def start(cp: CheckpointRecord, run_id: str | None) -> Run:
        run = Run(run_id, cp.ns, cp.checkpoint_id)
        runs.append(run)
        return run

    by_id = {cp.checkpoint_id: cp for cp in checkpoints}

    def in_order(tasks: Sequence[TaskRecord]) -> list[TaskRecord]:
        # a call finishes before its caller: deeper paths first
        return sorted(tasks, key=lambda t: (-t.path.count("~"), t.path, t.task_id))

    for cp in checkpoints:
        child = children.get(cp.checkpoint_id)
        parent = by_id.get(cp.parent_id or "")
        if cp.source == "loop" and parent is not None and children.get(parent.checkpoint_id) is not cp:
            # a later run went on from a checkpoint the thread had moved past (a
            # resume addressed at it): it ran that checkpoint's tasks again, and
            # their stored writes are the ones it streamed
            current = start(parent, cp.run_id)
            for t in in_order(parent.ran):
                if t.done and not t.hidden:
                    current.chunks.append({t.name: task_update(t.writes, keys)})
        tasks = in_order(cp.ran)
        by_edit = cp.source in ("update", "fork") or cp.checkpoint_id in edited
        if by_edit and child is None and not tasks:
            continue  # nothing ran from this edit (yet): no run
        timeline: dict[int, list[tuple[TaskRecord, str]]] = defaultdict(list)
        for t in tasks:
            for r, what in _events(t)[0]:
                timeline[r].append((t, what))
        stopped = False  # the run stopped before running this checkpoint's tasks
        # a later call went on from here; LangGraph counts any Command input as
        # resuming, a goto/update one sent after the run had finished too: then the
        # run ended normally and streamed no {"__interrupt__": ()} (cp.next, which
        # leaves out the Command's own writes, is empty), though a new run starts
        resumed = False
        if not any(t.interrupts or t.error is not None for t in tasks):
            if not by_edit and _resumed_at(cp, child):
                resumed = True
                stopped = bool(cp.next)
            elif child is None and not tasks:
                # the run stopped before nodes it was about to run (interrupt_before),
                # whether or not update_state or new input followed
                stopped = bool(cp.next)
        # this checkpoint's tasks ran in a later run than the one that made it
        later = stopped or resumed
        if later:
            timeline = defaultdict(list, {r + 1: v for r, v in timeline.items()})
        n_runs = max([0, *timeline]) + 1 if timeline or later else 1
        for r in range(n_runs):
            if r == 0:
                if current is None or cp.source != "loop":
                    current = start(cp, cp.run_id)
            else:
                run_id = child.run_id if (child is not None and r == n_runs - 1) else None
                current = start(cp, run_id)
            if r == 0 and later:
                if stopped:
                    current.chunks.append({INTERRUPT: ()})
                continue
            # tasks that finished in an earlier run are streamed again, marked cached
            # (not @task calls: their caller gets their saved result back silently)
            for t in tasks:
                done_at = next((rr for rr, what in _events(t)[0] if what == "done"), None)
                if done_at is not None and later:
                    done_at += 1
                if not t.hidden and not t.call and done_at is not None and done_at < r:
                    current.chunks.append(
                        {t.name: task_update(t.writes, keys), "__metadata__": {"cached": True}}
                    )
            # a @task call's interrupt is its caller's too (the same Interrupt, by
            # id): LangGraph streams it once
            streamed: set[str] = set()
            for t, what in timeline.get(r, []):
                if t.hidden:
                    continue
                if what == "done":
                    current.chunks.append({t.name: task_update(t.writes, keys)})
                elif what == "interrupt":
                    chunk = _interrupt_chunk(t)
                    ids = {getattr(i, "id", None) for i in chunk[INTERRUPT]}
                    if ids and None not in ids and ids <= streamed:
                        continue
                    streamed.update(i for i in ids if i is not None)
                    current.chunks.append(chunk)
                else:
                    current.complete = False
    return runs

"""Funnels of named steps from an in-memory copy of the person-event rollups.

`rollups.compile_funnel` answers these funnels in SQL, and at 10 M events that costs
~120 ms of which ~30 ms is planning the statement and most of the rest per-row work
(hash sets of 64-bit person hashes, `windowFunnel` states, arrays per person). Here the
rows of each built day are read once into arrays: persons as dense per-project numbers,
each day's (person, time) pairs sorted. A funnel is then a few vectorised passes:

* step 1: every person who did it (a flag per person number);
* `windowFunnel` (default mode) step by step: a step-k event at t is matched when the
  latest matched step-(k-1) event at or before it (the latest step-1 event for k = 2)
  began its chain no more than the window before t; a person's level is the last step with
  a matched event. That is the aggregate's own rule: it keeps, per step, the chain start of
  the latest matched event and overwrites it, in (time, step) order;
* times to convert: the greedy chain from the person's first step-1 event in the range,
  through the earliest later event of each next step within the window, as in
  `queries.funnel_steps`, with ClickHouse's `quantileExactInclusive(0.5)` for the medians.

Days enter and leave by (day, version): a rebuilt day is read again, and the projects
asked about least recently are dropped beyond the memory budget. Edge days and events not
built yet are read per query in SQL (few rows), as `Plan.person_events_rest` gives them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow.compute as pc
import structlog

from sextant.analytics import queries as q
from sextant.analytics import rollups
from sextant.analytics.schemas import FunnelQuery
from sextant.core.eventstore import EventStore

log = structlog.get_logger(__name__)

Ints = npt.NDArray[np.int64]
Ints32 = npt.NDArray[np.int32]

# A (person, time) pair as one sortable integer: the person number above bit 42, the time
# below as milliseconds after the range start (2**42 ms is 139 years).
_SHIFT = 42
_LOW = (1 << _SHIFT) - 1
_EPOCH = date(1970, 1, 1)


@dataclass
class _Day:
    """One built day of one event, bots apart ([0]: not bots, [1]: bots): the (person
    number, ms) pairs sorted, and the day's distinct persons."""

    version: int
    persons: tuple[Ints32, Ints32]
    times: tuple[Ints, Ints]
    distinct: tuple[Ints32, Ints32]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (*self.persons, *self.times, *self.distinct))


@dataclass
class _Project:
    known: npt.NDArray[np.uint64] = field(default_factory=lambda: np.empty(0, np.uint64))
    numbers: Ints = field(default_factory=lambda: np.empty(0, np.int64))
    count: int = 0
    days: dict[tuple[str, date], _Day] = field(default_factory=dict)
    nbytes: int = 0  # of the days

    @property
    def size(self) -> int:
        """Bytes held: the days and the person numbers."""
        return self.nbytes + self.known.nbytes + self.numbers.nbytes

    def numbers_of(self, hashes: npt.NDArray[np.uint64]) -> Ints:
        """Dense numbers for person hashes; a hash keeps its number once given."""
        if not len(hashes):
            return np.empty(0, np.int64)
        uniq, inverse = np.unique(hashes, return_inverse=True)
        pos = np.searchsorted(self.known, uniq)
        hit = np.zeros(len(uniq), bool)
        inside = pos < len(self.known)
        hit[inside] = self.known[pos[inside]] == uniq[inside]
        out = np.empty(len(uniq), np.int64)
        out[hit] = self.numbers[pos[hit]]
        new = ~hit
        if new.any():
            fresh = np.arange(self.count, self.count + int(new.sum()), dtype=np.int64)
            self.count += len(fresh)
            out[new] = fresh
            # Both sides are sorted: inserting keeps `known` sorted.
            self.known = np.insert(self.known, pos[new], uniq[new])
            self.numbers = np.insert(self.numbers, pos[new], fresh)
        return out[inverse.ravel()]


def _tenant(plan: rollups.Plan) -> q.Params:
    """Parameters of a statement on this plan's project and time zone."""
    params = q.Params()
    params.values["project_id"] = plan.scope.project_id
    params.values["tz"] = plan.scope.tz
    return params


def _entries(table: Any, project: _Project) -> tuple[Ints, Ints, Ints]:
    """(person number, ms) of every time of the rows of `table` (columns person and
    times), and the number of times of each row."""
    times = table.column("times")
    counts = pc.list_value_length(times).to_numpy().astype(np.int64)
    flat = pc.list_flatten(times).to_numpy().astype(np.int64)
    persons = project.numbers_of(table.column("person").to_numpy().astype(np.uint64))
    return np.repeat(persons, counts), flat, counts


def _day_order(days: Ints, bots: Ints, persons: Ints, times: Ints) -> Ints:
    """The order of entries by (day, bot flag, person, time). One sort of a packed key
    (day, flag, person number and the time within its local day, which lies between 14 h
    before and 38 h after the UTC midnight of its date) when they fit in 63 bits, which is 2-4
    times faster than sorting by four keys."""
    if not len(days):
        return np.empty(0, np.int64)
    first = int(days.min())
    offset = times - days * 86_400_000 + 14 * 3_600_000
    if (
        int(days.max()) - first < 1 << 12
        and int(persons.max()) < 1 << 22
        and int(offset.min()) >= 0
        and int(offset.max()) < 1 << 28
    ):
        packed = ((((days - first) << 1 | bots) << 22 | persons) << 28) | offset
        return np.argsort(packed, kind="stable")
    return np.lexsort((times, persons, bots, days))


def _median(values: npt.NDArray[np.float64]) -> float | None:
    """`quantileExactInclusive(0.5)`: x[n-1] + (h - n)(x[n] - x[n-1]), h = (N-1)/2 + 1."""
    if not len(values):
        return None
    xs = np.sort(values)
    h = 0.5 * (len(xs) - 1) + 1
    n = int(h)
    if n >= len(xs):
        return float(xs[-1])
    return float(xs[n - 1]) + (h - n) * (float(xs[n]) - float(xs[n - 1]))


class FunnelIndex:
    """The person-event rows of built days, in memory, and the funnels computed from them."""

    def __init__(
        self, store: EventStore, *, max_bytes: int, settings: dict[str, Any] | None = None
    ) -> None:
        self.store = store
        self.max_bytes = max_bytes
        # The statements' time and memory limits, with the rollup reads' own settings.
        self.settings = {**rollups._ROLLUP_SETTINGS, **(settings or {})}
        self._projects: OrderedDict[tuple[str, str], _Project] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # statements that read days into memory (for tests and logs)

    @property
    def nbytes(self) -> int:
        return sum(p.size for p in self._projects.values())

    # -- loading ---------------------------------------------------------------------------

    def _project(self, key: tuple[str, str]) -> _Project:
        found = self._projects.get(key)
        if found is None:
            found = self._projects[key] = _Project()
        self._projects.move_to_end(key)
        return found

    def _load(self, key: tuple[str, str], plan: rollups.Plan, events: Iterable[str]) -> bool:
        """Read the clean days of `events` that are missing or of another version; False
        (reading nothing more) when they would not fit the budget."""
        project = self._projects[key]
        wanted = {}
        for event in events:
            missing = {
                day: version
                for day, version in plan.clean.items()
                if (found := project.days.get((event, day))) is None or found.version != version
            }
            if missing:
                wanted[event] = missing
        if not wanted:
            return True
        # What the rows would take, asked first: a project too large for the budget must not
        # be read into memory to find that out.
        params = _tenant(plan)
        each = [
            f"(r.event = {params.bind(event, 'String')} AND {rollups.builds_of(params, days)})"
            for event, days in wanted.items()
        ]
        size = self.store.query(
            "SELECT count(), sum(length(r.times)) FROM rollup_person_events AS r "
            "WHERE r.project_id = {project_id:UUID} AND r.tz = {tz:String} "
            f"AND ({' OR '.join(each)})",
            params.values,
            settings=self.settings,
            connection="funnel-index",
        ).rows[0]
        rows, entries = int(size[0] or 0), int(size[1] or 0)
        # 12 bytes an entry, the day's distinct persons and their numbers at most per row.
        need = 12 * entries + 20 * rows
        if project.size + need > self.max_bytes:
            return False
        self._evict(key, need)
        started = time.perf_counter()
        for event, missing in wanted.items():
            params = _tenant(plan)
            name = params.bind(event, "String")
            table = self.store.query_arrow(
                "SELECT r.day AS day, r.is_bot AS is_bot, r.person AS person, r.times AS times "
                "FROM rollup_person_events AS r WHERE r.project_id = {project_id:UUID} "
                f"AND r.tz = {{tz:String}} AND r.event = {name} "
                f"AND {rollups.builds_of(params, missing)}",
                params.values,
                settings=self.settings,
                connection="funnel-index",
            )
            self.loads += 1
            persons, times, counts = _entries(table, project)
            days = np.repeat(
                table.column("day").to_numpy().astype("datetime64[D]").astype(np.int64), counts
            )
            bots = np.repeat(table.column("is_bot").to_numpy().astype(np.int64), counts)
            order = _day_order(days, bots, persons, times)
            persons, times, days, bots = persons[order], times[order], days[order], bots[order]
            for day, version in missing.items():
                number = (day - _EPOCH).days
                lo, hi = np.searchsorted(days, [number, number + 1])
                cut = int(np.searchsorted(bots[lo:hi], 1)) + lo
                old = project.days.get((event, day))
                halves = [(lo, cut), (cut, hi)]
                who = [persons[a:b].astype(np.int32) for a, b in halves]
                fresh = _Day(
                    version,
                    (who[0], who[1]),
                    (times[lo:cut].copy(), times[cut:hi].copy()),
                    (_distinct_sorted(who[0]), _distinct_sorted(who[1])),
                )
                project.days[(event, day)] = fresh
                project.nbytes += fresh.nbytes - (old.nbytes if old else 0)
        log.info(
            "funnel_rows_read",
            project_id=plan.scope.project_id,
            events=sorted(wanted),
            days=len({day for days in wanted.values() for day in days}),
            rows=rows,
            times=entries,
            held_mb=round(self.nbytes / 2**20, 1),
            seconds=round(time.perf_counter() - started, 3),
        )
        return True

    def _evict(self, keep: tuple[str, str], need: int) -> None:
        """Make room for `need` more bytes of project `keep`: drop the projects asked about
        least recently."""
        while self.nbytes + need > self.max_bytes and len(self._projects) > 1:
            oldest = next(iter(self._projects))
            if oldest == keep:
                self._projects.move_to_end(oldest)
                continue
            del self._projects[oldest]

    def _prune(self, plan: rollups.Plan, project: _Project) -> None:
        """Forget days of this project that no longer have the version held (rebuilt since,
        and not part of this range)."""
        if plan.states is None:
            return
        stale = [
            key
            for key, held in project.days.items()
            if plan.states.clean.get(key[1]) != held.version
        ]
        for key in stale:
            project.nbytes -= project.days.pop(key).nbytes

    # -- answering -------------------------------------------------------------------------

    def funnel(self, plan: rollups.Plan, query: FunnelQuery) -> dict[str, Any] | None:
        """The grand-total row (s1..sn, t2..tn) of a funnel `rollups.funnel_applies` to, or
        None when its days do not fit the memory budget."""
        steps = [str(step.event) for step in query.steps]
        names = sorted(set(steps))
        key = (plan.scope.project_id, plan.scope.tz)
        with self._lock:
            project = self._project(key)
            self._prune(plan, project)
            if not self._load(key, plan, names) or project.size > self.max_bytes:
                del self._projects[key]
                return None
            bot_sets = (0, 1) if plan.scope.include_bots else (0,)
            parts: dict[str, list[Part]] = {
                name: [
                    (held.persons[b], held.times[b], held.distinct[b])
                    for day in plan.clean
                    for held in (project.days[(name, day)],)
                    for b in bot_sets
                ]
                for name in names
            }
            base = int(plan.start.timestamp() * 1000)
            rest = self._rest(plan, project, names, base)
            count = project.count
        for name, (persons, times) in rest.items():
            parts[name].append((persons, times, np.unique(persons)))
        return _compute(steps, parts, count, query.window_seconds * 1000, base)

    def _rest(
        self, plan: rollups.Plan, project: _Project, names: list[str], base: int
    ) -> dict[str, tuple[Ints, Ints]]:
        """The rows outside the clean whole days (edge days, raw events), by event."""
        params = q.Params()
        rest = plan.person_events_rest(params, names)
        if rest is None:
            return {}
        table = self.store.query_arrow(
            f"SELECT event, person, times FROM {rest}",
            params.values,
            settings=self.settings,
            connection="funnel-index",
        )
        persons, times, counts = _entries(table, project)
        events = np.repeat(np.asarray(table.column("event").to_pylist(), dtype=object), counts)
        # Times are in the range by construction; a key must never wrap if one were not.
        inside = times >= base
        return {
            name: (persons[(events == name) & inside], times[(events == name) & inside])
            for name in names
        }


def _distinct_sorted(persons: Ints32) -> Ints32:
    """The distinct values of a sorted array."""
    if not len(persons):
        return persons.copy()
    return persons[np.flatnonzero(np.diff(persons, prepend=persons[0] - 1))]


Part = tuple[Ints32 | Ints, Ints, Ints32 | Ints]  # persons, times, distinct persons


def _keys(parts: list[Part], wanted: npt.NDArray[np.bool_], base: int) -> Ints:
    """The (person, time) keys of the entries of wanted persons, sorted (each part is a
    sorted run, and a stable sort merges runs quickly)."""
    chosen = []
    for persons, times, _ in parts:
        keep = wanted[persons]
        chosen.append((persons[keep].astype(np.int64) << _SHIFT) | (times[keep] - base))
    if not chosen:
        return np.empty(0, np.int64)
    return np.sort(np.concatenate(chosen), kind="stable")


def _compute(
    steps: list[str], parts: dict[str, list[Part]], count: int, window: int, base: int
) -> dict[str, Any]:
    n = len(steps)
    row: dict[str, Any] = {"g": 1, "breakdown": ""}
    row.update({f"s{k}": 0 for k in range(1, n + 1)})
    row.update({f"t{k}": None for k in range(2, n + 1)})
    did_first = np.zeros(count, bool)
    for _, _, distinct in parts[steps[0]]:
        did_first[distinct] = True
    row["s1"] = int(did_first.sum())
    did_second = np.zeros(count, bool)
    for _, _, distinct in parts[steps[1]]:
        did_second[distinct] = True
    candidate = did_first & did_second
    if not candidate.any():
        return row
    # Step-1 events of the candidates, and their later events as (key, step mask), sorted.
    ones = _keys(parts[steps[0]], candidate, base)
    masks: dict[str, int] = {}
    for k, name in enumerate(steps[1:], start=1):
        masks[name] = masks.get(name, 0) | (1 << k)
    later_keys = []
    later_masks = []
    for name, bits in masks.items():
        chosen = _keys(parts[name], candidate, base)
        later_keys.append(chosen)
        later_masks.append(np.full(len(chosen), bits, np.int64))
    lk = np.concatenate(later_keys)
    lm = np.concatenate(later_masks)
    order = np.lexsort((lm, lk))
    lk, lm = lk[order], lm[order]
    lp, lt = lk >> _SHIFT, lk & _LOW

    # windowFunnel, one step at a time: (keys, chain starts) of the matched events.
    prev_keys, prev_starts = ones, ones & _LOW
    for k in range(2, n + 1):
        mine = (lm >> (k - 1)) & 1 == 1
        sk, sp, st = lk[mine], lp[mine], lt[mine]
        j = np.searchsorted(prev_keys, sk, side="right") - 1
        ok = j >= 0
        jj = np.where(ok, j, 0)
        ok &= (prev_keys[jj] >> _SHIFT) == sp
        starts = prev_starts[jj]
        ok &= st <= starts + window
        prev_keys, prev_starts = sk[ok], starts[ok]
        row[f"s{k}"] = int(np.count_nonzero(np.diff(sp[ok], prepend=-1)))
        if not len(prev_keys):
            break

    # Times to convert: the chain from each candidate's first step-1 event in the range.
    heads = np.flatnonzero(np.diff(ones >> _SHIFT, prepend=-1))
    person, t0 = ones[heads] >> _SHIFT, ones[heads] & _LOW
    at = np.searchsorted(lk, ones[heads], side="left")  # (t0, step 1) sorts first at t0
    valid = np.ones(len(person), bool)
    previous_t = t0
    for k in range(2, n + 1):
        positions = np.flatnonzero((lm >> (k - 1)) & 1)
        idx = np.searchsorted(positions, at, side="left" if k == 2 else "right")
        found = idx < len(positions)
        pos = positions[np.where(found, idx, 0)] if len(positions) else np.zeros_like(idx)
        valid &= found
        valid &= lp[pos] == person
        valid &= lt[pos] <= t0 + window
        if not valid.any():
            break
        took = lt[pos]
        row[f"t{k}"] = _median((took[valid] - previous_t[valid]).astype(np.float64) / 1000)
        at, previous_t = pos, took
    return row

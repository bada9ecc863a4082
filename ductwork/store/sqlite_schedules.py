"""The SQLite store's recurring schedules: one row each, fired by compare-and-set."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from ductwork.store.protocol import SCHEDULE_FIELDS, Event, RunRow, ScheduleRow, now

_SCHED_COLS = ", ".join(SCHEDULE_FIELDS)


class SQLiteSchedules:
    """dw_schedules on the store's connection (a mixin of SQLiteStore)."""

    if TYPE_CHECKING:
        @property
        def conn(self) -> sqlite3.Connection: ...

        def _insert_run(self, run: RunRow, events: list[Event]) -> bool: ...

    async def create_schedule(self, row: ScheduleRow) -> tuple[ScheduleRow, bool]:
        values = [getattr(row, f) for f in SCHEDULE_FIELDS]
        cur = self.conn.execute(
            f"INSERT INTO dw_schedules ({_SCHED_COLS}) VALUES ({', '.join('?' * len(values))}) "
            "ON CONFLICT(job_id) DO NOTHING", values)
        if cur.rowcount == 1:
            return row, True
        existing = await self.get_schedule(row.job_id)
        assert existing is not None
        return existing, False

    async def get_schedule(self, job_id: str) -> ScheduleRow | None:
        row = self.conn.execute(f"SELECT {_SCHED_COLS} FROM dw_schedules WHERE job_id=?",
                                (job_id,)).fetchone()
        return ScheduleRow(*row) if row else None

    async def list_schedules(self, *, status: str | list[str] | None = None,
                             limit: int = 100) -> list[ScheduleRow]:
        sql = f"SELECT {_SCHED_COLS} FROM dw_schedules"
        params: list[Any] = []
        if status is not None:
            sts = [status] if isinstance(status, str) else list(status)
            sql += f" WHERE status IN ({', '.join('?' * len(sts))})"
            params += sts
        sql += " ORDER BY created_at, job_id LIMIT ?"
        return [ScheduleRow(*r) for r in self.conn.execute(sql, [*params, limit]).fetchall()]

    async def update_schedule(self, job_id: str, fields: dict[str, Any], *,
                              only_status: frozenset[str] | None = None) -> bool:
        fields = {**fields, "updated_at": now()}
        sql = f"UPDATE dw_schedules SET {', '.join(f'{k}=?' for k in fields)} WHERE job_id=?"
        params: list[Any] = [*fields.values(), job_id]
        if only_status is not None:
            sql += f" AND status IN ({', '.join('?' * len(only_status))})"
            params += sorted(only_status)
        return self.conn.execute(sql, params).rowcount == 1

    async def due_schedules(self, now: float, limit: int) -> list[ScheduleRow]:
        rows = self.conn.execute(
            f"SELECT {_SCHED_COLS} FROM dw_schedules WHERE status='active' AND "
            "next_run_at <= ? ORDER BY next_run_at, job_id LIMIT ?", (now, limit)).fetchall()
        return [ScheduleRow(*r) for r in rows]

    async def fire_schedule(self, job_id: str, expect_fired: int, fields: dict[str, Any],
                            run: RunRow | None,
                            events: list[tuple[float, str, str | None, str | None]]) -> bool:
        db = self.conn
        fields = {**fields, "updated_at": now()}
        db.execute("BEGIN IMMEDIATE")
        try:
            cur = db.execute(
                f"UPDATE dw_schedules SET {', '.join(f'{k}=?' for k in fields)} "
                "WHERE job_id=? AND fired=? AND status='active'",
                [*fields.values(), job_id, expect_fired])
            ok = cur.rowcount == 1
            if ok and run is not None:
                self._insert_run(run, events)  # a run id fired before stays as it is
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return ok


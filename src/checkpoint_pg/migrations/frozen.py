"""Frozen DDL of the Postgres functions as revision 0002 installed them.

A migration must keep doing what it did when it was written, whatever the
code of later releases looks like: revision 0002 installs (and 0003 restores on
downgrade) these statements, not the functions of the current code. The
placeholders ``tplschema.`` and ``tplprefix_<name>`` are replaced with the
quoted schema and prefix of the migration being run (see `render`).
"""

from __future__ import annotations

import re

from sqlalchemy.dialects import postgresql

from checkpoint_pg.schema import Tables

__all__ = ["FUNCTIONS_0002", "DROP_0002", "FUNCTIONS_SHA256_0003", "render"]

_NAME = re.compile(r"(?:tplschema\.)?tplprefix_(\w+)")


def render(template: str, tables: Tables) -> str:
    """A frozen statement for the prefix and schema of ``tables``."""
    quote = postgresql.dialect().identifier_preparer.quote
    schema = f"{quote(tables.schema)}." if tables.schema else ""

    def name(m: re.Match[str]) -> str:
        qualified = m.group(0).startswith("tplschema.")
        return (schema if qualified else "") + quote(tables.prefix + m.group(1))

    return _NAME.sub(name, template)


FUNCTIONS_0002: list[str] = [
    'CREATE OR REPLACE FUNCTION tplschema.tplprefix_split_refs(p_refs bytea) RETURNS SETOF bytea LANGUAGE plpgsql IMMUTABLE STRICT ROWS 8 AS $fn$\nBEGIN\nRETURN QUERY SELECT substring(p_refs FROM g * 16 + 1 FOR 16) FROM generate_series(0, length(p_refs) / 16 - 1) AS g;\nEND\n$fn$',
    "CREATE OR REPLACE FUNCTION tplschema.tplprefix_get_tuple(p_t text, p_ns text, p_id text, p_known bytea) RETURNS TABLE (o_tag int, o_a text, o_b text, o_c text, o_d text, o_n int, o_k int, o_r bytea, o_h bytea) LANGUAGE plpgsql STABLE AS $fn$\n#variable_conflict use_column\nBEGIN\nIF p_id IS NULL THEN RETURN QUERY WITH cp AS (SELECT checkpoint_id, parent_checkpoint_id, checkpoint, metadata FROM tplschema.tplprefix_checkpoints WHERE thread_id = p_t AND checkpoint_ns = p_ns ORDER BY checkpoint_id DESC LIMIT 1), direct AS (SELECT v.* FROM cp, json_each_text(cp.checkpoint::json -> 'channel_versions') AS q(ch, ver), LATERAL (SELECT channel, version, kind, base_version, root_version, refs FROM tplschema.tplprefix_channel_values WHERE thread_id = p_t AND checkpoint_ns = p_ns AND channel = q.ch AND version = q.ver OFFSET 0) AS v), vals AS (SELECT channel, version, kind, base_version, refs FROM direct UNION ALL SELECT c.* FROM direct AS d, LATERAL (SELECT channel, version, kind, base_version, refs FROM tplschema.tplprefix_channel_values WHERE thread_id = p_t AND checkpoint_ns = p_ns AND channel = d.channel AND version >= d.root_version AND version < d.version OFFSET 0) AS c WHERE d.kind = 3), w AS (SELECT w.* FROM cp, LATERAL (SELECT task_id, idx, channel, task_path, kind, refs FROM tplschema.tplprefix_writes WHERE thread_id = p_t AND checkpoint_ns = p_ns AND checkpoint_id = cp.checkpoint_id OFFSET 0) AS w), hs AS (SELECT DISTINCT r.h FROM (SELECT refs FROM vals UNION ALL SELECT refs FROM w) AS x, tplschema.tplprefix_split_refs(x.refs) AS r(h)), todo AS (SELECT hs.h FROM hs LEFT JOIN tplschema.tplprefix_split_refs(p_known::bytea) AS k(h) ON k.h = hs.h WHERE k.h IS NULL) SELECT 0, checkpoint_id, parent_checkpoint_id, checkpoint, metadata::text, NULL::int, NULL::int, NULL::bytea, NULL::bytea FROM cp UNION ALL SELECT 1, channel, version, base_version, NULL, NULL, kind, refs, NULL FROM vals UNION ALL SELECT 2, task_id, channel, task_path, NULL, idx, kind, refs, NULL FROM w UNION ALL SELECT 3, o.type, NULL, NULL, NULL, NULL, NULL, o.data, o.hash FROM todo, LATERAL (SELECT hash, type, data FROM tplschema.tplprefix_objects WHERE thread_id = p_t AND hash = todo.h OFFSET 0) AS o;\nELSE RETURN QUERY WITH cp AS (SELECT checkpoint_id, parent_checkpoint_id, checkpoint, metadata FROM tplschema.tplprefix_checkpoints WHERE thread_id = p_t AND checkpoint_ns = p_ns AND checkpoint_id = p_id ORDER BY checkpoint_id DESC LIMIT 1), direct AS (SELECT v.* FROM cp, json_each_text(cp.checkpoint::json -> 'channel_versions') AS q(ch, ver), LATERAL (SELECT channel, version, kind, base_version, root_version, refs FROM tplschema.tplprefix_channel_values WHERE thread_id = p_t AND checkpoint_ns = p_ns AND channel = q.ch AND version = q.ver OFFSET 0) AS v), vals AS (SELECT channel, version, kind, base_version, refs FROM direct UNION ALL SELECT c.* FROM direct AS d, LATERAL (SELECT channel, version, kind, base_version, refs FROM tplschema.tplprefix_channel_values WHERE thread_id = p_t AND checkpoint_ns = p_ns AND channel = d.channel AND version >= d.root_version AND version < d.version OFFSET 0) AS c WHERE d.kind = 3), w AS (SELECT w.* FROM cp, LATERAL (SELECT task_id, idx, channel, task_path, kind, refs FROM tplschema.tplprefix_writes WHERE thread_id = p_t AND checkpoint_ns = p_ns AND checkpoint_id = cp.checkpoint_id OFFSET 0) AS w), hs AS (SELECT DISTINCT r.h FROM (SELECT refs FROM vals UNION ALL SELECT refs FROM w) AS x, tplschema.tplprefix_split_refs(x.refs) AS r(h)), todo AS (SELECT hs.h FROM hs LEFT JOIN tplschema.tplprefix_split_refs(p_known::bytea) AS k(h) ON k.h = hs.h WHERE k.h IS NULL) SELECT 0, checkpoint_id, parent_checkpoint_id, checkpoint, metadata::text, NULL::int, NULL::int, NULL::bytea, NULL::bytea FROM cp UNION ALL SELECT 1, channel, version, base_version, NULL, NULL, kind, refs, NULL FROM vals UNION ALL SELECT 2, task_id, channel, task_path, NULL, idx, kind, refs, NULL FROM w UNION ALL SELECT 3, o.type, NULL, NULL, NULL, NULL, NULL, o.data, o.hash FROM todo, LATERAL (SELECT hash, type, data FROM tplschema.tplprefix_objects WHERE thread_id = p_t AND hash = todo.h OFFSET 0) AS o;\nEND IF;\nEND\n$fn$",
    "CREATE OR REPLACE FUNCTION tplschema.tplprefix_put(p_t text, p_tmd text, p_h bytea[], p_ty text[], p_d bytea[], p_ns text, p_ch text[], p_ver text[], p_kind int2[], p_base text[], p_root text[], p_refs bytea[], p_id text, p_parent text, p_run_id text, p_doc text, p_md text, p_req_ch text[], p_req_ver text[], p_req_n int, p_guard boolean) RETURNS void LANGUAGE plpgsql AS $fn$\n#variable_conflict use_column\nBEGIN\nINSERT INTO tplschema.tplprefix_threads AS t (thread_id, created_at, updated_at, metadata) VALUES (p_t, now(), now(), p_tmd::jsonb) ON CONFLICT (thread_id) DO UPDATE SET updated_at = excluded.updated_at, metadata = COALESCE(excluded.metadata, t.metadata);\nIF p_guard AND EXISTS (SELECT 1 FROM tplschema.tplprefix_checkpoints WHERE thread_id = p_t AND checkpoint_ns = p_ns AND checkpoint_id > coalesce(p_parent, '') AND checkpoint_id <> p_id) THEN\nRAISE EXCEPTION 'cpg_thread_busy: thread % is being run by another writer', p_t;\nEND IF;\nWITH w0 AS (INSERT INTO tplschema.tplprefix_objects (thread_id, hash, type, data) SELECT p_t, o.h, o.ty, o.d FROM unnest(p_h::bytea[], p_ty::text[], p_d::bytea[]) AS o(h, ty, d) ON CONFLICT DO NOTHING), w1 AS (INSERT INTO tplschema.tplprefix_channel_values (thread_id, checkpoint_ns, channel, version, kind, base_version, root_version, refs) SELECT p_t, p_ns, r.ch, r.ver, r.kind, r.base, r.root, r.refs FROM unnest(p_ch::text[], p_ver::text[], p_kind::int2[], p_base::text[], p_root::text[], p_refs::bytea[]) AS r(ch, ver, kind, base, root, refs) ON CONFLICT DO NOTHING) INSERT INTO tplschema.tplprefix_checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, run_id, checkpoint, metadata, complete) VALUES (p_t, p_ns, p_id, p_parent, p_run_id, p_doc, p_md::jsonb, (SELECT count(*) FROM unnest(p_req_ch::text[], p_req_ver::text[]) AS q(ch, ver) JOIN tplschema.tplprefix_channel_values v ON v.thread_id = p_t AND v.checkpoint_ns = p_ns AND v.channel = q.ch AND v.version = q.ver) = p_req_n) ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET parent_checkpoint_id = excluded.parent_checkpoint_id, run_id = excluded.run_id, checkpoint = excluded.checkpoint, metadata = excluded.metadata, complete = excluded.complete;\nEND\n$fn$",
    'CREATE OR REPLACE FUNCTION tplschema.tplprefix_put_writes(p_t text, p_ns text, p_cid text, p_task text, p_path text, p_idx int[], p_ch text[], p_kind int2[], p_refs bytea[], p_oidx int[], p_oh bytea[], p_oty text[], p_od bytea[]) RETURNS void LANGUAGE plpgsql AS $fn$\n#variable_conflict use_column\nBEGIN\nPERFORM 1 FROM tplschema.tplprefix_threads WHERE thread_id = p_t FOR KEY SHARE;\nWITH new AS (INSERT INTO tplschema.tplprefix_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, task_path, kind, refs) SELECT p_t, p_ns, p_cid, p_task, w.idx, w.ch, p_path, w.kind, w.refs FROM unnest(p_idx::int[], p_ch::text[], p_kind::int2[], p_refs::bytea[]) AS w(idx, ch, kind, refs) ON CONFLICT DO NOTHING RETURNING idx) INSERT INTO tplschema.tplprefix_objects (thread_id, hash, type, data) SELECT DISTINCT ON (o.h) p_t, o.h, o.ty, o.d FROM unnest(p_oidx::int[], p_oh::bytea[], p_oty::text[], p_od::bytea[]) AS o(idx, h, ty, d) WHERE o.idx IN (SELECT idx FROM new) ON CONFLICT DO NOTHING;\nEND\n$fn$',
]

DROP_0002: list[str] = [
    'DROP FUNCTION IF EXISTS tplschema.tplprefix_split_refs(bytea)',
    'DROP FUNCTION IF EXISTS tplschema.tplprefix_get_tuple(text, text, text, bytea)',
    'DROP FUNCTION IF EXISTS tplschema.tplprefix_put(text, text, bytea[], text[], bytea[], text, text[], text[], int2[], text[], text[], bytea[], text, text, text, text, text, text[], text[], int, boolean)',
    'DROP FUNCTION IF EXISTS tplschema.tplprefix_put_writes(text, text, text, text, text, int[], text[], int2[], bytea[], int[], bytea[], text[], bytea[])',
]


# Revision 0003 installs the functions of the current code (sql/functions.py).
# This is the SHA-256 of their DDL for the default prefix: a test fails when
# the code changes, since a database already at 0003 would keep the old ones.
# To change a function, freeze this DDL here as FUNCTIONS_0003 and write a
# revision that installs the new one.
FUNCTIONS_SHA256_0003 = "d95852ed5b79196e115fc161a37a01a073971e086de48fd4e46964f027cd9820"

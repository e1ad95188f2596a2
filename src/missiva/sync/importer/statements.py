"""The SQL of one import batch, by name, for PostgreSQL and SQLite.

A batch is loaded into the temporary table `imp_rows` (PostgreSQL: COPY; SQLite: executemany), then
every step below runs once for the whole batch, set-based, in the batch's transaction:

  resolve        find each row's recipient by email, else by mobile
  insert_new     create the recipients nobody has yet (then resolve again)
  mark_new       remember which rows created their recipient
  expand_subs    one `imp_subs` row per row and channel, with the current subscription status and,
                 from the policy's CASE, what happens to it
  collapse_subs  rows that met on one recipient change each of its subscriptions once
  mark_skipped   rows whose every subscription is skipped (pending/unsubscribed, not forced)
  create_subs / set_subscribed / set_pending / set_unsubscribed   the status writes
  merge_fields / write_fields   field values merged (empty ignored or overwriting, ' ' clears)
  attach_*       a found recipient gets the identity it lacked, if nobody else has it
  collect_groups / add_groups / collect_removals / remove_groups   group memberships
  describe_changes   what changed per row, in the shape of `audience.recipients.Changes`
  insert_events  one audience event per change, with the recipient snapshot, source `import`
  outcomes       the per-row outcome for the counters

Rows carry `patch`, a JSON object of field number -> new value (null clears the field), and `groups`, a
JSON array of group ids (null: the row says nothing about groups).
"""

from __future__ import annotations

from dataclasses import dataclass

from missiva.audience.enums import Reason

OPTOUT_IMPORT = Reason.IMPORT.optout_type

_CREATE_SUBS = """
INSERT INTO subscriptions (account_id, recipient_id, list_id, channel, status, created_at, updated_at,
    requested_at, subscribed_at, unsubscribed_at, unsubscribe_reason, unsubscribe_source,
    consent_method, consent_at)
SELECT :a, rid, list_id, channel,
    CASE action WHEN 'create_sub' THEN 'subscribed' WHEN 'create_pending' THEN 'pending'
        ELSE 'unsubscribed' END,
    :now, :now,
    CASE WHEN action = 'create_pending' THEN :now END,
    CASE WHEN action = 'create_sub' THEN :now END,
    CASE WHEN action = 'create_unsub' THEN :now END,
    CASE WHEN action = 'create_unsub' THEN 'import' END,
    CASE WHEN action = 'create_unsub' THEN 'import' END,
    CASE WHEN action <> 'create_unsub' THEN 'import' END,
    CASE WHEN action <> 'create_unsub' THEN :now END
FROM imp_subs WHERE action IN ('create_sub', 'create_pending', 'create_unsub')
ORDER BY seq, channel
ON CONFLICT (recipient_id, list_id, channel) DO UPDATE SET
    status = excluded.status, updated_at = excluded.updated_at, requested_at = excluded.requested_at,
    subscribed_at = excluded.subscribed_at, unsubscribed_at = excluded.unsubscribed_at,
    unsubscribe_reason = excluded.unsubscribe_reason, unsubscribe_source = excluded.unsubscribe_source,
    consent_method = excluded.consent_method, consent_at = excluded.consent_at
WHERE subscriptions.status = 'new'
"""

_FILL_SUBSCRIPTION_IDS = """
UPDATE imp_subs SET sid = (SELECT s.id FROM subscriptions s WHERE s.recipient_id = imp_subs.rid
    AND s.list_id = imp_subs.list_id AND s.channel = imp_subs.channel)
WHERE sid IS NULL
"""

_SET_SUBSCRIBED = """
UPDATE subscriptions SET status = 'subscribed', subscribed_at = :now, unsubscribed_at = NULL,
    unsubscribe_reason = NULL, unsubscribe_source = NULL, unsubscribe_mailing_id = NULL,
    updated_at = :now, consent_method = 'import', consent_ip = NULL, consent_at = :now
WHERE id {ids_in}(SELECT sid FROM imp_subs WHERE action = 'subscribe'){ids_end}
"""

_SET_PENDING = """
UPDATE subscriptions SET status = 'pending', requested_at = :now, updated_at = :now,
    consent_method = 'import', consent_ip = NULL, consent_at = :now
WHERE id {ids_in}(SELECT sid FROM imp_subs WHERE action = 'request'){ids_end}
"""

_SET_UNSUBSCRIBED = """
UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = :now, updated_at = :now,
    unsubscribe_reason = 'import', unsubscribe_source = 'import', unsubscribe_mailing_id = NULL
WHERE id {ids_in}(SELECT sid FROM imp_subs WHERE action = 'unsubscribe'){ids_end}
"""

_RESOLVE = """
UPDATE imp_rows SET rid = COALESCE(
    (SELECT r.id FROM recipients r WHERE r.account_id = :a AND r.email = imp_rows.email),
    (SELECT r.id FROM recipients r WHERE r.account_id = :a AND r.mobile = imp_rows.mobile))
WHERE rid IS NULL
"""

# A recipient this batch created carries the batch's timestamp and exactly the row's identities (a
# row whose insert lost to another row of the batch sharing its mobile is not new). Lookups of the
# audience tables are written as scalar subqueries on purpose: PostgreSQL runs them per batch row
# through the primary key, where a join may be planned as a scan of the whole table at every batch.
_MARK_NEW = """
UPDATE imp_rows SET new_rec = TRUE
WHERE rid IS NOT NULL AND (
    SELECT r.created_at = :now AND COALESCE(r.email, '') = COALESCE(imp_rows.email, '')
        AND COALESCE(r.mobile, '') = COALESCE(imp_rows.mobile, '')
    FROM recipients r WHERE r.id = imp_rows.rid)
"""

# A recipient created by this batch has no subscription yet: its rows skip the two lookups.
_EXPAND_SUBS = """
INSERT INTO imp_subs (seq, rid, list_id, channel, cur, sid, action)
SELECT x.seq, x.rid, x.list_id, '{channel}', x.cur, x.sid, {case}
FROM (SELECT b.seq, b.rid, b.list_id,
        CASE WHEN NOT b.new_rec THEN (SELECT s.status FROM subscriptions s WHERE s.recipient_id = b.rid
            AND s.list_id = b.list_id AND s.channel = '{channel}') END AS cur,
        CASE WHEN NOT b.new_rec THEN (SELECT s.id FROM subscriptions s WHERE s.recipient_id = b.rid
            AND s.list_id = b.list_id AND s.channel = '{channel}') END AS sid
    FROM imp_rows b WHERE b.rid IS NOT NULL AND b.{identity} IS NOT NULL) x
"""

# Two rows of a batch can meet on one recipient through a mobile number (one found by its email, the
# other by its mobile, or the second finding the recipient the first created). They would both make
# the same status change to the same subscription: the first row of the batch makes it, the others
# keep the status (their fields and groups still apply).
_COLLAPSE_SUBS = """
UPDATE imp_subs SET action = 'keep'
FROM (SELECT seq, channel, ROW_NUMBER() OVER (PARTITION BY rid, list_id, channel ORDER BY seq) AS n
    FROM imp_subs) d
WHERE imp_subs.seq = d.seq AND imp_subs.channel = d.channel AND d.n > 1
    AND imp_subs.action NOT IN ('keep', 'skip')
"""

_MARK_SKIPPED = """
UPDATE imp_rows SET skip = TRUE
WHERE rid IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM imp_subs s WHERE s.seq = imp_rows.seq AND s.action <> 'skip')
"""

_ATTACH_EMAIL = """
UPDATE imp_rows SET attach_email = email
WHERE rid IS NOT NULL AND NOT new_rec AND NOT skip AND email IS NOT NULL
    AND (SELECT r.email IS NULL FROM recipients r WHERE r.id = imp_rows.rid)
    AND (SELECT o.id FROM recipients o WHERE o.account_id = :a AND o.email = imp_rows.email) IS NULL
"""

_ATTACH_MOBILE = """
UPDATE imp_rows SET attach_mobile = mobile
WHERE rid IS NOT NULL AND NOT new_rec AND NOT skip AND mobile IS NOT NULL
    AND (SELECT r.mobile IS NULL FROM recipients r WHERE r.id = imp_rows.rid)
    AND (SELECT o.id FROM recipients o WHERE o.account_id = :a AND o.mobile = imp_rows.mobile) IS NULL
    AND mobile NOT IN (SELECT d.mobile FROM imp_rows d WHERE d.mobile IS NOT NULL
        GROUP BY d.mobile HAVING COUNT(*) > 1)
"""

_WRITE_IDENTITIES = """
UPDATE recipients SET
    email = COALESCE(recipients.email, (SELECT b.attach_email FROM imp_rows b WHERE b.rid = recipients.id
        AND b.attach_email IS NOT NULL LIMIT 1)),
    mobile = COALESCE(recipients.mobile, (SELECT b.attach_mobile FROM imp_rows b WHERE b.rid = recipients.id
        AND b.attach_mobile IS NOT NULL LIMIT 1)),
    updated_at = :now
WHERE recipients.id {ids_in}(SELECT rid FROM imp_rows
    WHERE attach_email IS NOT NULL OR attach_mobile IS NOT NULL){ids_end}
"""

_WRITE_FIELDS = """
UPDATE recipients SET updated_at = :now, fields = (SELECT b.new_fields FROM imp_rows b
    WHERE b.rid = recipients.id AND b.new_fields IS NOT NULL LIMIT 1)
WHERE recipients.id {ids_in}(SELECT rid FROM imp_rows WHERE {changed}){ids_end}
"""

_ADD_GROUPS = """
INSERT INTO group_members (group_id, recipient_id, account_id, created_at)
SELECT group_id, rid, :a, :now FROM imp_groups WHERE NOT existed ORDER BY seq, group_id
ON CONFLICT DO NOTHING
"""

_COLLECT_REMOVALS = """
INSERT INTO imp_gremove (seq, rid, group_id)
SELECT b.seq, b.rid, gm.group_id FROM imp_rows b
JOIN group_members gm ON gm.recipient_id = b.rid
JOIN groups g ON g.id = gm.group_id AND g.list_id = b.list_id
WHERE b.rid IS NOT NULL AND NOT b.skip AND NOT b.new_rec AND b.groups IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM imp_groups x WHERE x.seq = b.seq AND x.group_id = gm.group_id)
"""

_REMOVE_GROUPS = """
DELETE FROM group_members WHERE recipient_id {ids_in}(SELECT rid FROM imp_gremove){ids_end}
    AND (group_id, recipient_id) IN (SELECT group_id, rid FROM imp_gremove)
"""

# The events of a batch, one row each, in file order and, inside a row, email, sms, then profile.
_EVENT_ROWS = """
SELECT seq, CASE WHEN channel = 'email' THEN 0 ELSE 1 END AS ord, rid, list_id, channel, sid,
    NULLIF(cur, 'new') AS prev, action AS kind, NULL AS changes
FROM imp_subs WHERE action NOT IN ('keep', 'skip')
UNION ALL
SELECT seq, 2, rid, list_id, NULL, NULL, NULL, 'updated', changes FROM imp_rows WHERE touched
"""

_EVENT_TYPE = """CASE e.kind
        WHEN 'create_sub' THEN 'subscription.confirmed' WHEN 'subscribe' THEN 'subscription.confirmed'
        WHEN 'create_pending' THEN 'subscription.requested' WHEN 'request' THEN 'subscription.requested'
        WHEN 'updated' THEN 'recipient.updated' ELSE 'subscription.unsubscribed' END"""

_EVENT_REASON = "CASE WHEN e.kind IN ('create_unsub', 'unsubscribe') THEN 'import' END"

_OUTCOMES = """
SELECT outcome, COUNT(*) FROM (
    SELECT CASE
        WHEN b.rid IS NULL THEN 'skipped'
        WHEN EXISTS (SELECT 1 FROM imp_subs s WHERE s.seq = b.seq
            AND s.action IN ('unsubscribe', 'create_unsub')) THEN 'unsubscribed'
        WHEN EXISTS (SELECT 1 FROM imp_subs s WHERE s.seq = b.seq
            AND s.action IN ('create_sub', 'create_pending')) THEN 'new'
        WHEN b.touched OR EXISTS (SELECT 1 FROM imp_subs s WHERE s.seq = b.seq
            AND s.action IN ('subscribe', 'request')) THEN 'updated'
        WHEN b.skip THEN 'skipped'
        ELSE 'unchanged' END AS outcome
    FROM imp_rows b) o
GROUP BY outcome
"""

_EVENT_COLUMNS = (
    "account_id, type, occurred_at, list_id, recipient_id, channel, source, reason, mailing_id, data"
)
RETURNED_EVENT_COLUMNS = (
    "id, account_id, type, occurred_at, list_id, recipient_id, channel, source, reason, mailing_id, data"
)


def _pg(template: str) -> str:
    """`template` for PostgreSQL: id lists as `= ANY(ARRAY(subquery))`, one index probe per id."""
    return template.replace("{ids_in}", "= ANY(ARRAY").replace("{ids_end}", ")")


def _lite(template: str) -> str:
    """`template` for SQLite: id lists as `IN (subquery)`."""
    return template.replace("{ids_in}", "IN ").replace("{ids_end}", "")


@dataclass(frozen=True)
class Statements:
    """The named statements of one dialect; `{case}` in `expand_subs` is filled from the policy."""

    temp_exists: str
    create_temp: tuple[str, ...]
    clear_temp: tuple[str, ...]
    resolve: str
    insert_new: str
    insert_new_marked: str | None
    mark_new: str
    expand_subs: str
    collapse_subs: str
    mark_skipped: str
    create_subs: str
    fill_subscription_ids: str
    set_subscribed: str
    set_pending: str
    set_unsubscribed: str
    merge_fields: str
    write_fields: str
    attach_email: str
    attach_mobile: str
    write_identities: str
    collect_groups: str
    add_groups: str
    collect_removals: str
    remove_groups: str
    describe_changes: str
    insert_events: str
    outcomes: str


POSTGRESQL = Statements(
    temp_exists="SELECT to_regclass('pg_temp.imp_gremove')",
    create_temp=(
        """CREATE TEMP TABLE IF NOT EXISTS imp_rows (
            seq bigint PRIMARY KEY, email text, mobile text, list_id integer NOT NULL,
            patch jsonb NOT NULL, groups jsonb, rid bigint, new_rec boolean NOT NULL DEFAULT false,
            skip boolean NOT NULL DEFAULT false, old_fields jsonb, new_fields jsonb,
            attach_email text, attach_mobile text, changes jsonb, touched boolean NOT NULL DEFAULT false
        ) ON COMMIT DELETE ROWS""",
        """CREATE TEMP TABLE IF NOT EXISTS imp_subs (
            seq bigint NOT NULL, rid bigint NOT NULL, list_id integer NOT NULL, channel text NOT NULL,
            cur text, sid bigint, action text) ON COMMIT DELETE ROWS""",
        "CREATE INDEX IF NOT EXISTS imp_subs_seq ON imp_subs (seq)",
        """CREATE TEMP TABLE IF NOT EXISTS imp_groups (
            seq bigint NOT NULL, rid bigint NOT NULL, group_id integer NOT NULL, existed boolean NOT NULL
        ) ON COMMIT DELETE ROWS""",
        "CREATE INDEX IF NOT EXISTS imp_groups_seq ON imp_groups (seq)",
        """CREATE TEMP TABLE IF NOT EXISTS imp_gremove (
            seq bigint NOT NULL, rid bigint NOT NULL, group_id integer NOT NULL) ON COMMIT DELETE ROWS""",
    ),
    clear_temp=(),  # ON COMMIT DELETE ROWS
    resolve=_RESOLVE,
    insert_new="""
        INSERT INTO recipients (account_id, email, mobile, fields, created_at, updated_at)
        SELECT :a, email, mobile, jsonb_strip_nulls(patch), :now, :now FROM imp_rows
        WHERE rid IS NULL ORDER BY seq
        ON CONFLICT DO NOTHING""",
    # The rows whose recipient this statement created are the new ones: marked from RETURNING, which
    # saves a second lookup per row. Rows of one batch differ in (email, mobile), so the pair finds them.
    insert_new_marked="""
        WITH created AS (
            INSERT INTO recipients (account_id, email, mobile, fields, created_at, updated_at)
            SELECT :a, email, mobile, jsonb_strip_nulls(patch), :now, :now FROM imp_rows
            WHERE rid IS NULL ORDER BY seq
            ON CONFLICT DO NOTHING
            RETURNING id, email, mobile)
        UPDATE imp_rows SET rid = created.id, new_rec = TRUE FROM created
        WHERE imp_rows.rid IS NULL AND COALESCE(imp_rows.email, '') = COALESCE(created.email, '')
            AND COALESCE(imp_rows.mobile, '') = COALESCE(created.mobile, '')""",
    mark_new=_MARK_NEW,
    expand_subs=_EXPAND_SUBS,
    collapse_subs=_COLLAPSE_SUBS,
    mark_skipped=_MARK_SKIPPED,
    create_subs=_CREATE_SUBS,
    fill_subscription_ids=_FILL_SUBSCRIPTION_IDS,
    set_subscribed=_pg(_SET_SUBSCRIBED),
    set_pending=_pg(_SET_PENDING),
    set_unsubscribed=_pg(_SET_UNSUBSCRIBED),
    merge_fields="""
        UPDATE imp_rows SET (old_fields, new_fields) = (
            SELECT r.fields, jsonb_strip_nulls(r.fields || imp_rows.patch) FROM recipients r
            WHERE r.id = imp_rows.rid)
        WHERE rid IS NOT NULL AND NOT new_rec AND NOT skip AND patch <> '{}'::jsonb""",
    write_fields=_pg(_WRITE_FIELDS).replace("{changed}", "new_fields <> old_fields"),
    attach_email=_ATTACH_EMAIL,
    attach_mobile=_ATTACH_MOBILE,
    write_identities=_pg(_WRITE_IDENTITIES),
    collect_groups="""
        INSERT INTO imp_groups (seq, rid, group_id, existed)
        SELECT b.seq, b.rid, g.value::integer, EXISTS (SELECT 1 FROM group_members gm
            WHERE gm.group_id = g.value::integer AND gm.recipient_id = b.rid)
        FROM imp_rows b CROSS JOIN LATERAL jsonb_array_elements_text(b.groups) AS g(value)
        WHERE b.rid IS NOT NULL AND NOT b.skip AND b.groups IS NOT NULL""",
    add_groups=_ADD_GROUPS,
    # LATERAL ... OFFSET 0 keeps the per-row index lookup (no join over all memberships).
    collect_removals="""
        INSERT INTO imp_gremove (seq, rid, group_id)
        SELECT b.seq, b.rid, m.group_id FROM imp_rows b
        CROSS JOIN LATERAL (SELECT gm.group_id FROM group_members gm JOIN groups g ON g.id = gm.group_id
            WHERE gm.recipient_id = b.rid AND g.list_id = b.list_id OFFSET 0) m
        WHERE b.rid IS NOT NULL AND NOT b.skip AND NOT b.new_rec AND b.groups IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM imp_groups x WHERE x.seq = b.seq AND x.group_id = m.group_id)""",
    remove_groups=_pg(_REMOVE_GROUPS),
    describe_changes="""
        UPDATE imp_rows SET touched = true, changes = jsonb_strip_nulls(jsonb_build_object(
            'fields', CASE WHEN new_fields <> old_fields THEN (
                SELECT jsonb_object_agg(k, jsonb_build_array(COALESCE(old_fields ->> k, ''),
                    COALESCE(new_fields ->> k, '')))
                FROM jsonb_object_keys(patch) AS k
                WHERE (old_fields ->> k) IS DISTINCT FROM (new_fields ->> k)) END,
            'groups_added', (SELECT jsonb_agg(x.group_id ORDER BY x.group_id) FROM imp_groups x
                WHERE x.seq = imp_rows.seq AND NOT x.existed),
            'groups_removed', (SELECT jsonb_agg(x.group_id ORDER BY x.group_id) FROM imp_gremove x
                WHERE x.seq = imp_rows.seq),
            'email', CASE WHEN attach_email IS NOT NULL THEN jsonb_build_array(NULL, attach_email) END,
            'mobile', CASE WHEN attach_mobile IS NOT NULL THEN jsonb_build_array(NULL, attach_mobile) END))
        WHERE rid IS NOT NULL AND NOT new_rec AND NOT skip AND (new_fields <> old_fields
            OR attach_email IS NOT NULL OR attach_mobile IS NOT NULL
            OR EXISTS (SELECT 1 FROM imp_groups x WHERE x.seq = imp_rows.seq AND NOT x.existed)
            OR EXISTS (SELECT 1 FROM imp_gremove x WHERE x.seq = imp_rows.seq))""",
    insert_events=f"""
        INSERT INTO audience_events ({_EVENT_COLUMNS})
        SELECT :a, {_EVENT_TYPE}, :now, e.list_id, e.rid, e.channel, 'import', {_EVENT_REASON}, NULL,
            (SELECT jsonb_build_object(
                'email', r.email, 'mobile', r.mobile, 'fields', r.fields,
                'groups', COALESCE((SELECT jsonb_agg(jsonb_build_object('id', g.id, 'list_id', g.list_id)
                    ORDER BY g.id) FROM group_members gm JOIN groups g ON g.id = gm.group_id
                    WHERE gm.recipient_id = r.id), '[]'::jsonb),
                'subscriptions', COALESCE((SELECT jsonb_agg(jsonb_build_object('list_id', s.list_id,
                    'channel', s.channel, 'status', s.status) ORDER BY s.list_id, s.channel)
                    FROM subscriptions s WHERE s.recipient_id = r.id), '[]'::jsonb))
                FROM recipients r WHERE r.id = e.rid)
            || CASE e.kind
                WHEN 'create_sub' THEN jsonb_build_object('method', 'import', 'previous_status', e.prev)
                WHEN 'subscribe' THEN jsonb_build_object('method', 'forced', 'previous_status', e.prev)
                WHEN 'create_pending' THEN jsonb_build_object('subscription_id', e.sid,
                    'previous_status', e.prev, 'send_confirmation', {{confirm}})
                WHEN 'request' THEN jsonb_build_object('subscription_id', e.sid,
                    'previous_status', e.prev, 'send_confirmation', {{confirm}})
                WHEN 'updated' THEN jsonb_build_object('changes', e.changes)
                ELSE jsonb_build_object('optout_type', {OPTOUT_IMPORT}) END
        FROM ({_EVENT_ROWS}) e
        ORDER BY e.seq, e.ord""",
    outcomes=_OUTCOMES,
)


def _sqlite_key(doc: str) -> str:
    """`doc`'s value for the json_each key `j.key` (field numbers need quoting in a JSON path)."""
    return f"json_extract({doc}, '$.\"' || j.key || '\"')"


SQLITE = Statements(
    temp_exists="SELECT 1 FROM temp.sqlite_master WHERE name = 'imp_gremove'",
    create_temp=(
        """CREATE TEMP TABLE IF NOT EXISTS imp_rows (
            seq INTEGER PRIMARY KEY, email TEXT, mobile TEXT, list_id INTEGER NOT NULL,
            patch TEXT NOT NULL, groups TEXT, rid INTEGER, new_rec INTEGER NOT NULL DEFAULT 0,
            skip INTEGER NOT NULL DEFAULT 0, old_fields TEXT, new_fields TEXT,
            attach_email TEXT, attach_mobile TEXT, changes TEXT, touched INTEGER NOT NULL DEFAULT 0)""",
        """CREATE TEMP TABLE IF NOT EXISTS imp_subs (
            seq INTEGER NOT NULL, rid INTEGER NOT NULL, list_id INTEGER NOT NULL, channel TEXT NOT NULL,
            cur TEXT, sid INTEGER, action TEXT)""",
        "CREATE INDEX IF NOT EXISTS temp.imp_subs_seq ON imp_subs (seq)",
        """CREATE TEMP TABLE IF NOT EXISTS imp_groups (
            seq INTEGER NOT NULL, rid INTEGER NOT NULL, group_id INTEGER NOT NULL,
            existed INTEGER NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS temp.imp_groups_seq ON imp_groups (seq)",
        """CREATE TEMP TABLE IF NOT EXISTS imp_gremove (
            seq INTEGER NOT NULL, rid INTEGER NOT NULL, group_id INTEGER NOT NULL)""",
    ),
    clear_temp=(
        "DELETE FROM imp_rows",
        "DELETE FROM imp_subs",
        "DELETE FROM imp_groups",
        "DELETE FROM imp_gremove",
    ),
    resolve=_RESOLVE,
    insert_new="""
        INSERT INTO recipients (account_id, email, mobile, fields, created_at, updated_at)
        SELECT :a, email, mobile, json_patch('{}', patch), :now, :now FROM imp_rows
        WHERE rid IS NULL ORDER BY seq
        ON CONFLICT DO NOTHING""",
    insert_new_marked=None,
    mark_new=_MARK_NEW,
    expand_subs=_EXPAND_SUBS,
    collapse_subs=_COLLAPSE_SUBS,
    mark_skipped=_MARK_SKIPPED,
    create_subs=_CREATE_SUBS,
    fill_subscription_ids=_FILL_SUBSCRIPTION_IDS,
    set_subscribed=_lite(_SET_SUBSCRIBED),
    set_pending=_lite(_SET_PENDING),
    set_unsubscribed=_lite(_SET_UNSUBSCRIBED),
    merge_fields="""
        UPDATE imp_rows SET old_fields = r.fields, new_fields = json_patch(r.fields, imp_rows.patch)
        FROM recipients r
        WHERE r.id = imp_rows.rid AND NOT imp_rows.new_rec AND NOT imp_rows.skip
            AND imp_rows.patch <> '{}'""",
    write_fields=_lite(_WRITE_FIELDS).replace("{changed}", "new_fields <> json(old_fields)"),
    attach_email=_ATTACH_EMAIL,
    attach_mobile=_ATTACH_MOBILE,
    write_identities=_lite(_WRITE_IDENTITIES),
    collect_groups="""
        INSERT INTO imp_groups (seq, rid, group_id, existed)
        SELECT b.seq, b.rid, g.value, EXISTS (SELECT 1 FROM group_members gm
            WHERE gm.group_id = g.value AND gm.recipient_id = b.rid)
        FROM imp_rows b, json_each(b.groups) g
        WHERE b.rid IS NOT NULL AND NOT b.skip AND b.groups IS NOT NULL""",
    add_groups=_ADD_GROUPS,
    collect_removals=_COLLECT_REMOVALS,
    remove_groups=_lite(_REMOVE_GROUPS),
    # json_patch('{}', x) drops x's null members, like jsonb_strip_nulls.
    describe_changes=f"""
        UPDATE imp_rows SET touched = 1, changes = json_patch('{{}}', json_object(
            'fields', CASE WHEN new_fields <> json(old_fields) THEN json(NULLIF((
                SELECT json_group_object(j.key, json_array(COALESCE({_sqlite_key("old_fields")}, ''),
                    COALESCE({_sqlite_key("new_fields")}, '')))
                FROM json_each(patch) j
                WHERE {_sqlite_key("old_fields")} IS NOT {_sqlite_key("new_fields")}), '{{}}')) END,
            'groups_added', json(NULLIF((SELECT json_group_array(group_id) FROM (SELECT x.group_id
                FROM imp_groups x WHERE x.seq = imp_rows.seq AND NOT x.existed ORDER BY x.group_id)), '[]')),
            'groups_removed', json(NULLIF((SELECT json_group_array(group_id) FROM (SELECT x.group_id
                FROM imp_gremove x WHERE x.seq = imp_rows.seq ORDER BY x.group_id)), '[]')),
            'email', CASE WHEN attach_email IS NOT NULL THEN json_array(NULL, attach_email) END,
            'mobile', CASE WHEN attach_mobile IS NOT NULL THEN json_array(NULL, attach_mobile) END))
        WHERE rid IS NOT NULL AND NOT new_rec AND NOT skip AND (new_fields <> json(old_fields)
            OR attach_email IS NOT NULL OR attach_mobile IS NOT NULL
            OR EXISTS (SELECT 1 FROM imp_groups x WHERE x.seq = imp_rows.seq AND NOT x.existed)
            OR EXISTS (SELECT 1 FROM imp_gremove x WHERE x.seq = imp_rows.seq))""",
    # json_set (not json_patch) adds the extra keys, because json_patch would drop a null
    # previous_status where the single-row path stores it.
    insert_events=f"""
        INSERT INTO audience_events ({_EVENT_COLUMNS})
        SELECT :a, {_EVENT_TYPE}, :now, e.list_id, e.rid, e.channel, 'import', {_EVENT_REASON}, NULL,
            CASE e.kind
                WHEN 'create_sub' THEN json_set(e.snap, '$.method', 'import', '$.previous_status', e.prev)
                WHEN 'subscribe' THEN json_set(e.snap, '$.method', 'forced', '$.previous_status', e.prev)
                WHEN 'create_pending' THEN json_set(e.snap, '$.subscription_id', e.sid,
                    '$.previous_status', e.prev, '$.send_confirmation', json('{{confirm}}'))
                WHEN 'request' THEN json_set(e.snap, '$.subscription_id', e.sid,
                    '$.previous_status', e.prev, '$.send_confirmation', json('{{confirm}}'))
                WHEN 'updated' THEN json_set(e.snap, '$.changes', json(e.changes))
                ELSE json_set(e.snap, '$.optout_type', {OPTOUT_IMPORT}) END
        FROM (SELECT ev.*, json_object(
                'email', r.email, 'mobile', r.mobile, 'fields', json(r.fields),
                'groups', json((SELECT json_group_array(json_object('id', g.id, 'list_id', g.list_id))
                    FROM (SELECT g.id, g.list_id FROM group_members gm JOIN groups g ON g.id = gm.group_id
                        WHERE gm.recipient_id = r.id ORDER BY g.id) g)),
                'subscriptions', json((SELECT json_group_array(json_object('list_id', s.list_id,
                    'channel', s.channel, 'status', s.status))
                    FROM (SELECT s.list_id, s.channel, s.status FROM subscriptions s
                        WHERE s.recipient_id = r.id ORDER BY s.list_id, s.channel) s))) AS snap
            FROM ({_EVENT_ROWS}) ev JOIN recipients r ON r.id = ev.rid) e
        ORDER BY e.seq, e.ord""",
    outcomes=_OUTCOMES,
)


def statements_for(dialect: str) -> Statements:
    """The statements for a SQLAlchemy dialect name."""
    if dialect == "postgresql":
        return POSTGRESQL
    if dialect == "sqlite":
        return SQLITE
    raise ValueError(f"imports support PostgreSQL and SQLite, not {dialect}")

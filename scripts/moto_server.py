"""moto_server as lamed's tests run it: moto's own server, started as
``moto_server -H HOST -p PORT`` starts it (same arguments), with two
changes, both for the DynamoDB store's tests
(crates/store/src/dynamodb/testing.rs starts it, for every test).

1. One request at a time (werkzeug's ``threaded=False``). Moto takes no
   lock: a ``TransactWriteItems`` checks its conditions and writes item by
   item, and an ``UpdateItem ADD`` reads then writes, so two requests
   served at once interleave, which DynamoDB never does to one item. One
   at a time gives the store what DynamoDB promises it, and costs nothing
   (moto is pure Python under one GIL). Still needed with change 2: with
   threads, the conformance test ``concurrent_duplicates_count_once``
   counted a duplicate twice in one run of three.

2. ``TransactWriteItems`` costs what it touches. Moto 5.2.6 deep-copies
   the whole table before the transaction (once per item it names) to put
   the copy back if one of its actions fails, so each transaction costs
   O(table) and a test's run time grows with the square of its events.
   Here the snapshot holds only the items the transaction names (the key
   of a Put's ``Item``, the others' ``Key``, found as moto finds them): a
   deep copy of each, or a note that it was absent. A rollback puts the
   copies back and deletes the items that were absent (and the empty
   range-key bucket moto's lookup created). Moto's answers stay the same:

   - a transaction writes only the items it names (moto's Put, Update,
     Delete and ConditionCheck touch the item at their key, nothing else),
     and the snapshot is taken before its first action, so after a
     rollback every item is as before, as with the whole copy;
   - moto derives indexes, counts and sizes from the items when asked, and
     sorts every listing by key, so nothing else in the table changes or
     shows the items' order;
   - only tables moto would have copied are snapshotted (named by
     ``TableName``, not by ARN), and a table with a stream keeps moto's
     whole copy (its stream records roll back with it);
   - an action whose key moto cannot read fails there, before it writes,
     so it needs no snapshot.

   scripts/moto_server_check.py (run by a test) checks this on random
   transactions: moto's function and this one give the same answers and
   leave the same tables.

   The change is textual: two passages of moto's own source of the
   function are replaced and the result compiled in moto's module. The
   source is pinned by its SHA-256 (moto ``MOTO_VERSION``): another moto
   refuses to start, naming the versions, so that an upgrade cannot change
   what the tests run on unseen. scripts/aws-test-env.sh installs
   ``MOTO_VERSION``; after an upgrade, read the new function, redo the
   passages and the hash.
"""

import copy
import hashlib
import inspect
import logging
import sys
import textwrap
from importlib.metadata import version

import moto.dynamodb.models
import moto.server
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table

#: The moto the patch is written for (scripts/aws-test-env.sh installs it).
MOTO_VERSION = "5.2.6"

#: SHA-256 of ``inspect.getsource(DynamoDBBackend.transact_write_items)``
#: in that version.
SOURCE_SHA256 = "81db2cb7d94e39c90b3a2077e1f4bb41a449c558ef9b1b1e2910fdaa39978ad4"

#: Moto's snapshot: the whole table, deep-copied once per action.
SNAPSHOT = """\
        # Create a backup in case any of the transactions fail
        original_table_state: dict[str, Table] = {}
        for item in transact_items:
            _, op = next(iter(item.items()))
            table_name = op.get("TableName")
            if table_name and table_name in self.tables:
                original_table_state[table_name] = copy.deepcopy(
                    self.tables[table_name]
                )
"""
SNAPSHOT_NEW = """\
        original_table_state = _lamed_snapshot(self, transact_items)
"""

#: Moto's rollback (twice, at two depths): put the copied tables back.
ROLLBACK = """\
for table_name in original_table_state:
    self.tables[table_name] = original_table_state[table_name]
"""
ROLLBACK_NEW = """\
_lamed_restore(self, original_table_state)
"""


def snapshot(backend, transact_items):
    """What a rollback needs, per table moto would copy: a whole copy for
    a table with a stream, else ``{(hash, range): (had_bucket, item)}``,
    the item deep-copied or None when absent, and whether a range-key
    table had its hash bucket (moto's lookup creates an empty one, so
    ``table.items`` is read here with ``get``)."""
    # Moto's own loop, so that the same input fails the same way: it copies
    # the tables named by name (an action may name one of them by ARN).
    copied = set()
    for transact_item in transact_items:
        _, op = next(iter(transact_item.items()))
        table_name = op.get("TableName")
        if table_name and table_name in backend.tables:
            copied.add(table_name)
    saved = {}
    for transact_item in transact_items:
        op_type, op = next(iter(transact_item.items()))
        try:
            # The key as moto's transaction reads it.
            table = backend.get_table(op["TableName"])
            if op_type == "Put":
                attrs = op["Item"]
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            hash_value, range_value = backend.get_keys_value(table, key)
        except Exception:  # moto fails on this action before it writes
            continue
        if table.name not in copied:
            continue
        if table.stream_shard is not None:
            if table.name not in saved:
                saved[table.name] = copy.deepcopy(table)
            continue
        items = saved.setdefault(table.name, {})
        if (hash_value, range_value) in items:
            continue  # named twice: the first copy is the state before
        bucket = table.items.get(hash_value)
        if table.range_key_attr is None:
            current = bucket
        else:
            current = None if bucket is None else bucket.get(range_value)
        items[(hash_value, range_value)] = (
            bucket is not None,
            copy.deepcopy(current),
        )
    return saved


def restore(backend, saved):
    """Puts back what :func:`snapshot` saved."""
    for table_name, state in saved.items():
        if isinstance(state, Table):
            backend.tables[table_name] = state
            continue
        table = backend.tables[table_name]
        for (hash_value, range_value), (had_bucket, item) in state.items():
            if table.range_key_attr is None:
                if item is None:
                    table.items.pop(hash_value, None)
                else:
                    table.items[hash_value] = item
            elif not had_bucket:
                table.items.pop(hash_value, None)
            elif item is None:
                table.items[hash_value].pop(range_value, None)
            else:
                table.items[hash_value][range_value] = item


def patched(original):
    """Moto's function with the snapshot and rollback replaced, compiled
    in moto's module; refuses another moto's source."""
    source = inspect.getsource(original)
    digest = hashlib.sha256(source.encode()).hexdigest()
    installed = version("moto")
    if digest != SOURCE_SHA256:
        sys.exit(
            f"scripts/moto_server.py: moto {installed} is installed, but the "
            f"transaction patch is written for moto {MOTO_VERSION} "
            f"(DynamoDBBackend.transact_write_items has SHA-256 {digest}, "
            f"expected {SOURCE_SHA256}): install moto[server]=={MOTO_VERSION} "
            "(scripts/aws-test-env.sh) or redo the patch for this version"
        )
    replacements = [(SNAPSHOT, SNAPSHOT_NEW)] + [
        (textwrap.indent(ROLLBACK, indent), textwrap.indent(ROLLBACK_NEW, indent))
        for indent in (" " * 16, " " * 12)
    ]
    for old, new in replacements:
        # The hash pins the source, so this holds unless the passages were
        # edited here.
        assert source.count(old) == 1, f"passage not found once:\n{old}"
        source = source.replace(old, new)
    namespace = dict(
        vars(moto.dynamodb.models),
        _lamed_snapshot=snapshot,
        _lamed_restore=restore,
    )
    code = compile(textwrap.dedent(source), __file__, "exec")
    exec(code, namespace)
    return namespace[original.__name__]


def main():
    # Errors only on stderr (the tests show it): no line per request.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    DynamoDBBackend.transact_write_items = patched(
        DynamoDBBackend.transact_write_items
    )
    run_simple = moto.server.run_simple
    moto.server.run_simple = lambda *args, **kwargs: run_simple(
        *args, **{**kwargs, "threaded": False}
    )
    moto.server.main()


if __name__ == "__main__":
    main()

"""Checks scripts/moto_server.py's transaction patch against moto itself:
the same random transactions (Put, Update ADD, Delete, ConditionCheck, with
conditions that fail, items named twice, keys moto refuses, tables named
by ARN, on a hash-key
and a hash-and-range-key table) run on moto's own TransactWriteItems and on
the patched one, in-process (moto's mock_aws), must give the same answer
and leave the same items, counts and sizes after every transaction.

Usage: python scripts/moto_server_check.py [SEED ...] (the test venv's
python; crates/store/src/dynamodb/testing.rs runs it).
"""

import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import boto3  # noqa: E402
import moto_server  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.dynamodb.models import DynamoDBBackend  # noqa: E402

ORIG = DynamoDBBackend.transact_write_items
PATCHED = moto_server.patched(ORIG)
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/"


def gen(rng, n):
    """`n` random transactions of 1 to 5 actions on few keys."""
    seq = []
    for _ in range(n):
        acts = []
        for _ in range(rng.randint(1, 5)):
            t = rng.choice(["range", "hash"])
            pk = {"S": f"p{rng.randint(0,3)}"}
            key = {"pk": pk}
            if t == "range":
                key["sk"] = {"N": str(rng.randint(0, 3))}
            tn = "T" + t
            if rng.random() < 0.1:
                tn = ARN + tn  # moto copies only tables named by name
            if rng.random() < 0.05:
                key = {"zz": pk}  # bad key
            kind = rng.choice(["Put", "Update", "Delete", "ConditionCheck"])
            cond = rng.choice([None, "attribute_not_exists(pk)", "attribute_exists(pk)", "c < :m"])
            op = {"TableName": tn}
            vals = {}
            if kind == "Put":
                op["Item"] = dict(key, c={"N": str(rng.randint(0, 5))})
            else:
                op["Key"] = key
            if kind == "Update":
                op["UpdateExpression"] = "ADD c :one"
                vals[":one"] = {"N": "1"}
            if kind == "ConditionCheck" and cond is None:
                cond = "attribute_exists(pk)"
            if cond:
                op["ConditionExpression"] = cond
                if ":m" in cond:
                    vals[":m"] = {"N": "3"}
            if vals:
                op["ExpressionAttributeValues"] = vals
            acts.append({kind: op})
        seq.append(acts)
    return seq


def run(impl, seq):
    """Each transaction's answer and the tables after it, on `impl`."""
    DynamoDBBackend.transact_write_items = impl
    out = []
    with mock_aws():
        c = boto3.client("dynamodb", region_name="us-east-1")
        c.create_table(TableName="Trange", KeySchema=[{"AttributeName":"pk","KeyType":"HASH"},{"AttributeName":"sk","KeyType":"RANGE"}],
            AttributeDefinitions=[{"AttributeName":"pk","AttributeType":"S"},{"AttributeName":"sk","AttributeType":"N"}], BillingMode="PAY_PER_REQUEST")
        c.create_table(TableName="Thash", KeySchema=[{"AttributeName":"pk","KeyType":"HASH"}],
            AttributeDefinitions=[{"AttributeName":"pk","AttributeType":"S"}], BillingMode="PAY_PER_REQUEST")
        for acts in seq:
            try:
                c.transact_write_items(TransactItems=acts)
                r = "ok"
            except Exception as e:
                r = repr(getattr(e, "response", e))
                if hasattr(e, "response"):
                    r = json.dumps({k: v for k, v in e.response.items() if k != "ResponseMetadata"}, sort_keys=True, default=str)
            state = []
            for t in ["Trange", "Thash"]:
                state.append(c.scan(TableName=t)["Items"])
                d = c.describe_table(TableName=t)["Table"]
                state.append((d["ItemCount"], d["TableSizeBytes"]))
            out.append((r, state))
    return out


def main(seeds):
    for seed in seeds:
        seq = gen(random.Random(seed), 200)
        ours = run(PATCHED, seq)
        theirs = run(ORIG, seq)
        for i, (x, y) in enumerate(zip(theirs, ours)):
            if x != y:
                sys.exit(f"seed {seed}, transaction {i}: {seq[i]}\nmoto: {x}\npatched: {y}")
        failed = sum(1 for r, _ in theirs if r != "ok")
        print(f"seed {seed}: {len(seq)} transactions ({failed} cancelled or refused), same answers")


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1:]] or [1])

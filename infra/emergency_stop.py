#!/usr/bin/env python3
"""Emergency stop for FinOps Autopilot: `on` makes every function run as dry-run and the
approval function refuse to execute; `off` resumes. Writes the switch item the functions read
(pk=CONTROL, sk=EMERGENCY_STOP) and an audit item, in one transaction.

Used by `make emergency-stop` / `make resume`. Credentials, region and (for local AWS)
AWS_ENDPOINT_URL come from the usual AWS environment.
"""
import argparse
import datetime
import getpass
import sys

import boto3
from botocore.exceptions import BotoCoreError, ClientError


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("state", choices=["on", "off", "status"])
    p.add_argument("--table", required=True, help="the FinOps state table (stack output StateTable)")
    p.add_argument("--by", default=getpass.getuser(), help="who is flipping the switch")
    p.add_argument("--reason", default="", help="why (shown in every run's notes)")
    a = p.parse_args()
    ddb = boto3.client("dynamodb")
    try:
        if a.state == "status":
            item = ddb.get_item(TableName=a.table, Key={"pk": {"S": "CONTROL"}, "sk": {"S": "EMERGENCY_STOP"}},
                                ConsistentRead=True).get("Item")
            on = bool(item and item.get("on", {}).get("BOOL"))
            print(f"emergency stop is {'ON' if on else 'off'}"
                  + (f" (set by {item['by']['S']} at {item['at']['S']}: {item['reason']['S']})" if item else ""))
            return 0
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")
        on = a.state == "on"
        event = "emergency-stop-on" if on else "emergency-stop-off"
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": a.table, "Item": {
                "pk": {"S": "CONTROL"}, "sk": {"S": "EMERGENCY_STOP"}, "kind": {"S": "control"},
                "on": {"BOOL": on}, "by": {"S": a.by}, "at": {"S": now}, "reason": {"S": a.reason}}}},
            {"Put": {"TableName": a.table, "Item": {
                "pk": {"S": "AUDIT#CONTROL"}, "sk": {"S": f"{now}#{event}#{a.by}"}, "kind": {"S": "audit"},
                "event": {"S": event}, "ref_id": {"S": a.by}, "detail": {"S": a.reason}, "at": {"S": now}},
                "ConditionExpression": "attribute_not_exists(pk)"}},
        ])
    except (BotoCoreError, ClientError) as e:
        print(f"emergency stop: {e}", file=sys.stderr)
        return 1
    print(f"emergency stop {'ON: every function runs as dry-run' if on else 'off: functions obey their policy again'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

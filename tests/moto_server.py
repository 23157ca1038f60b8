"""moto server for the tests and the demo: stock moto, with DynamoDB requests made atomic.

DynamoDB applies each request atomically: a conditional write or a transaction either happens
whole or not at all, and a refused one changes nothing. moto's server answers requests on many
threads without a lock, and its TransactWriteItems undoes a cancelled transaction by putting back
a copy of every table it touched, taken when that transaction began. A transaction refused while
another request wrote to the same table in between therefore erases that write. 50 concurrent
approvals of one request showed it: an approval executed, then a refused vote put the request's
status back to `approved`.

This wrapper serialises DynamoDB requests (one lock around DynamoDB's request handler), which
is the atomicity DynamoDB itself gives. Every other service, and everything else about DynamoDB,
is stock moto. The concurrency stays where it is tested: in the functions, which still send their
requests at the same time.

Faults: a test may ask DynamoDB to answer one operation (optionally only requests whose body
contains a string) with a given error, a given number of times, as DynamoDB itself answers it
(e.g. a TransactionCanceledException whose reasons say TransactionConflict). It sends the rule as
the body of a request with `X-Amz-Target: DynamoDB_20120810.FinopsInjectFault`:
{"operation": "TransactWriteItems", "body_contains": ":approved", "times": 1, "status": 400,
 "response": {"__type": "...", ...}}.

Usage: python moto_server.py [moto_server arguments]
"""

import json
import sys
import threading

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_dynamodb = threading.Lock()
_stock_dispatch = DynamoHandler._dispatch
_faults = []
_JSON = {"Content-Type": "application/x-amz-json-1.0"}


def atomic_dispatch(self, request, full_url=None, headers=None):
    headers = headers if headers is not None else request.headers
    target = headers.get("X-Amz-Target") or headers.get("x-amz-target") or ""
    operation = target.rsplit(".", 1)[-1]
    # werkzeug caches the body, so moto's own parsing still reads it.
    body = request.get_data(as_text=True)
    with _dynamodb:
        if operation == "FinopsInjectFault":
            _faults.append(json.loads(body))
            return 200, dict(_JSON), "{}"
        for rule in _faults:
            if rule.get("times", 0) > 0 and rule.get("operation") == operation and rule.get("body_contains", "") in body:
                rule["times"] -= 1
                return rule.get("status", 400), dict(_JSON), json.dumps(rule["response"])
        return _stock_dispatch(self, request, full_url, headers)


DynamoHandler._dispatch = atomic_dispatch

if __name__ == "__main__":
    main(sys.argv[1:])

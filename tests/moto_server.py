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

Usage: python moto_server.py [moto_server arguments]
"""

import sys
import threading

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_dynamodb = threading.Lock()
_stock_call_action = DynamoHandler.call_action


def atomic_call_action(self):
    with _dynamodb:
        return _stock_call_action(self)


DynamoHandler.call_action = atomic_call_action

if __name__ == "__main__":
    main(sys.argv[1:])

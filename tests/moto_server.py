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

Faults for every service: `POST /_finops/faults` with {"service": "ec2", "operation":
"DescribeInstances" (or "*"), "share": 0.2, "seed": 7, "fault": "throttle" | "500" | "503" |
"drop" | "lost" | "slow", "delay_ms": 2000} answers that seeded share of the matching requests as
the service does when overloaded (EC2 RequestLimitExceeded 503, query services Throttling 400, JSON
services ThrottlingException 400, S3 SlowDown 503), or drops the connection, or carries the request
out and then drops the connection ("lost": the client never hears that it succeeded), or answers
late. A rule with share 0 injects nothing and counts (`seen`) the requests that reach it.
A rule may also name `body_contains` (only requests whose body holds that string), `times` (at
most that many faults) and `status` with `response` (this exact JSON answer instead, e.g. a
TransactionCanceledException whose reasons say TransactionConflict), or `status` with `body` and
`content_type` (this exact answer, e.g. STS's AccessDenied XML for one account's role).
`GET /_finops/faults` returns how many each rule injected; `DELETE /_finops/faults` clears them.
The service is the one in the request's SigV4 credential scope.

Usage: python moto_server.py [moto_server arguments]
"""

import io
import json
import random
import re
import socket
import sys
import threading
import time
import urllib.parse

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_dynamodb = threading.Lock()
_stock_dispatch = DynamoHandler._dispatch


def atomic_dispatch(self, request, full_url=None, headers=None):
    with _dynamodb:
        return _stock_dispatch(self, request, full_url, headers)


DynamoHandler._dispatch = atomic_dispatch

# ------------------------------------------------------------------------------------------
# Faults for every service, at the dispatcher in front of all of moto's backends.

from moto.moto_server.werkzeug_app import DomainDispatcherApplication  # noqa: E402

_rules = []
_rules_lock = threading.Lock()
_stock_call = DomainDispatcherApplication.__call__
_JSON_SERVICES = {"dynamodb", "config", "ce", "secretsmanager", "sqs"}
_QUERY_SERVICES = {"monitoring", "sns", "sts", "iam"}


def _service(environ):
    m = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request", environ.get("HTTP_AUTHORIZATION", ""))
    return m.group(1) if m else ""


# S3's REST operations by their subresource: GET ?tagging is GetBucketTagging, and so on.
_S3_SUBRESOURCES = {"tagging": "BucketTagging", "policy": "BucketPolicy", "policyStatus": "BucketPolicyStatus",
                    "acl": "BucketAcl", "publicAccessBlock": "PublicAccessBlock", "website": "BucketWebsite",
                    "location": "BucketLocation", "ownershipControls": "BucketOwnershipControls"}


def _operation(environ, body):
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return target.rsplit(".", 1)[-1]
    query = environ.get("QUERY_STRING", "")
    for source in (query, body.decode("utf-8", "replace")):
        action = urllib.parse.parse_qs(source).get("Action")
        if action:
            return action[0]
    method = environ.get("REQUEST_METHOD", "")
    keys = [k.split("=", 1)[0] for k in query.split("&") if k]
    keys += [environ.get("PATH_INFO", "").rstrip("/").rsplit("/", 1)[-1]]
    for key in keys:
        if key in _S3_SUBRESOURCES:
            return method.capitalize() + _S3_SUBRESOURCES[key]
    return method


def _answer(service, fault, start_response):
    rid = "finops-fault-0000"
    if fault == "500" or fault == "503":
        status, ctype, body = fault, "application/xml", "<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>"
        if service in _JSON_SERVICES:
            ctype = "application/x-amz-json-1.0"
            body = json.dumps({"__type": "InternalServerError", "message": "Internal server error"})
        if fault == "503" and service in _JSON_SERVICES:
            body = json.dumps({"__type": "ServiceUnavailable", "message": "Service unavailable"})
    elif service == "ec2":
        status, ctype = "503", "text/xml"
        body = ("<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
                f"</Error></Errors><RequestID>{rid}</RequestID></Response>")
    elif service == "s3":
        status, ctype = "503", "application/xml"
        body = f"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>{rid}</RequestId></Error>"
    elif service == "dynamodb":
        status, ctype = "400", "application/x-amz-json-1.0"
        body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                           "message": "The level of configured provisioned throughput for the table was exceeded."})
    elif service in _JSON_SERVICES:
        status, ctype = "400", "application/x-amz-json-1.1"
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"})
    else:
        status, ctype = "400", "text/xml"
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
                f"<RequestId>{rid}</RequestId></ErrorResponse>")
    reason = {"400": "Bad Request", "500": "Internal Server Error", "503": "Service Unavailable"}[status]
    data = body.encode()
    start_response(f"{status} {reason}", [("Content-Type", ctype), ("Content-Length", str(len(data))),
                                          ("x-amzn-RequestId", rid)])
    return [data]


def _control(environ, start_response):
    method = environ.get("REQUEST_METHOD")
    with _rules_lock:
        if method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            rule = json.loads(environ["wsgi.input"].read(length) or b"{}")
            rule["random"] = random.Random(rule.get("seed", 0))
            rule["injected"] = 0
            rule["seen"] = 0
            _rules.append(rule)
        elif method == "DELETE":
            _rules.clear()
        out = json.dumps([{k: v for k, v in r.items() if k != "random"} for r in _rules]).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
    return [out]


def faulty_call(self, environ, start_response):
    if environ.get("PATH_INFO") == "/_finops/faults":
        return _control(environ, start_response)
    if not _rules:
        return _stock_call(self, environ, start_response)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    service, operation = _service(environ), _operation(environ, body)
    chosen = None
    with _rules_lock:
        for rule in _rules:
            if rule.get("service") != service or rule.get("operation", "*") not in ("*", operation):
                continue
            if rule.get("body_contains", "").encode() not in body:
                continue
            if "times" in rule and rule["injected"] >= rule["times"]:
                continue
            rule["seen"] += 1
            if rule["random"].random() < rule.get("share", 1.0):
                rule["injected"] += 1
                chosen = rule
                break
    if chosen is None:
        return _stock_call(self, environ, start_response)
    if "body" in chosen:
        data = chosen["body"].encode()
        status = str(chosen.get("status", 400))
        start_response(f"{status} Fault", [("Content-Type", chosen.get("content_type", "text/xml")),
                                           ("Content-Length", str(len(data)))])
        return [data]
    if "response" in chosen:
        data = json.dumps(chosen["response"]).encode()
        status = str(chosen.get("status", 400))
        start_response(f"{status} Fault", [("Content-Type", "application/x-amz-json-1.0"),
                                           ("Content-Length", str(len(data)))])
        return [data]
    fault = chosen.get("fault", "throttle")
    if fault == "slow":
        time.sleep(chosen.get("delay_ms", 2000) / 1000.0)
        return _stock_call(self, environ, start_response)
    if fault == "lost":
        # Carried out, then the answer is lost: the connection drops before the client reads it.
        result = _stock_call(self, environ, lambda *args, **kwargs: (lambda data: None))
        for _ in result:
            pass
        if hasattr(result, "close"):
            result.close()
        fault = "drop"
    if fault == "drop":
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        start_response("500 Internal Server Error", [("Content-Length", "0")])
        return [b""]
    return _answer(service, fault, start_response)


DomainDispatcherApplication.__call__ = faulty_call

if __name__ == "__main__":
    main(sys.argv[1:])

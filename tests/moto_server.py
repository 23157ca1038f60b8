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

import aws_iam
import aws_template
from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_dynamodb = threading.Lock()
_stock_dispatch = DynamoHandler._dispatch


def atomic_dispatch(self, request, full_url=None, headers=None):
    with _dynamodb:
        return _stock_dispatch(self, request, full_url, headers)


DynamoHandler._dispatch = atomic_dispatch

# ------------------------------------------------------------------------------------------
# SNS subscription filter policies as AWS applies them. moto treats a message without attributes
# as one whose attributes are all absent, so `{"k": [{"exists": false}]}` matches it. AWS does
# not: an attribute-scoped filter policy never matches a message that carries no attributes
# ("exists: false" matches only if at least one attribute is present; the key-matching section of
# https://docs.aws.amazon.com/sns/latest/dg/string-value-matching.html and
# https://docs.aws.amazon.com/sns/latest/dg/attribute-key-matching.html). CloudWatch alarm
# notifications carry none.

from moto.sns.utils import FilterPolicyMatcher  # noqa: E402

_stock_matches = FilterPolicyMatcher.matches


def aws_matches(self, message_attributes, message):
    if self.filter_policy and self.filter_policy_scope == "MessageAttributes" and not message_attributes:
        return False
    return _stock_matches(self, message_attributes, message)


FilterPolicyMatcher.matches = aws_matches

# A public IPv4 address no Elastic IP owns: AWS reports its owner as "amazon" (an auto-assigned
# address, released when the instance stops); moto reports the account as if every address were
# an Elastic IP. `IpOwnerId` of
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InstanceNetworkInterfaceAssociation.html
# ("The ID of the owner of the Elastic IP address"), and "amazon" for the others in
# https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-instance-addressing.html.

from moto.ec2.models.elastic_network_interfaces import NetworkInterface  # noqa: E402

_stock_association = NetworkInterface.association


def _aws_association(self):
    association = _stock_association.fget(self)
    if association and not association.get("allocationId"):
        association["ipOwnerId"] = "amazon"
    return association


NetworkInterface.association = property(_aws_association)

# An instance's LaunchTime is "the time that the instance was last launched"
# (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Instance.html): EC2 sets it again at
# every start of a stopped instance; moto keeps the first launch's.

from moto.ec2.models.instances import Instance as _Ec2Instance  # noqa: E402
from moto.core.utils import utcnow as _utcnow  # noqa: E402

_stock_start = _Ec2Instance.start


def _aws_start(self, *args, **kwargs):
    was_stopped = getattr(self, "_state", None) is not None and self._state.name == "stopped"
    result = _stock_start(self, *args, **kwargs)
    if was_stopped:
        self.launch_time = _utcnow()
    return result


_Ec2Instance.start = _aws_start

# S3's own evaluation of bucket and access point policies (`IsPublic`) as AWS documents it; see
# aws_s3.py.

import aws_s3  # noqa: E402

aws_s3.install()

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
            _stale.clear()
        out = json.dumps([{k: v for k, v in r.items() if k != "random"} for r in _rules]).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
    return [out]


def _iam_control(environ, start_response):
    """POST {"access_key", "function", "parameters", "physical"}: requests signed with that key are
    authorised as the template's role of that function (resolved); GET: the refusals so far;
    DELETE: no principal any more."""
    method = environ.get("REQUEST_METHOD")
    status, out = "200 OK", {}
    try:
        if method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            ask = json.loads(environ["wsgi.input"].read(length) or b"{}")
            fn = aws_template.function(ask["function"], ask.get("parameters"), ask.get("physical"))
            if not fn["deployed"]:
                raise aws_template.Unresolved(f"{ask['function']} is not deployed with these parameters")
            aws_iam.register(ask["access_key"], {"name": ask["function"], "role": ask.get("role", fn["logical"] + "Role"),
                                                 "statements": fn["statements"], "ask": ask,
                                                 "resolve": aws_template.function})
            out = fn
        elif method == "DELETE":
            aws_iam.clear()
        out = {"function": out, "refusals": list(aws_iam.refusals)}
    except Exception as e:  # noqa: BLE001 - the test reads the reason
        status, out = "400 Bad Request", {"error": f"{type(e).__name__}: {e}"}
    data = json.dumps(out).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def _template_control(environ, start_response):
    """POST {"parameters", "physical"}: every function of the template as deployed, resolved."""
    status = "200 OK"
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        ask = json.loads(environ["wsgi.input"].read(length) or b"{}")
        out = aws_template.functions(ask.get("parameters"), ask.get("physical"))
    except Exception as e:  # noqa: BLE001 - the test reads the reason
        status, out = "400 Bad Request", {"error": f"{type(e).__name__}: {e}"}
    data = json.dumps(out).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


# ------------------------------------------------------------------------------------------
# Eventual consistency: AWS may answer a read right after a write with the state before it
# (EC2: https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html; S3 bucket
# configuration such as Block Public Access:
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/Welcome.html#ConsistencyModel; DynamoDB
# reads without ConsistentRead: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.ReadConsistency.html).
# A rule {"fault": "stale", "service": "*" | "ec2" | "s3" | "dynamodb", "share": 0.5, "seed": 7,
# "window_ms": 3000} makes the layer read each written resource just before the write, and
# answer a seeded share of the reads of that one resource in the window after it with that old
# answer (a read by id, or through one filter naming the one id): DescribeInstances of an
# instance after Stop/StartInstances or CreateTags,
# DescribeVolumes of a volume after DeleteVolume or CreateTags, GetPublicAccessBlock of a bucket
# after PutPublicAccessBlock, GetItem (not ConsistentRead) after PutItem/UpdateItem/DeleteItem.

_stale = {}


def _stale_rule(service):
    with _rules_lock:
        for rule in _rules:
            if rule.get("fault") == "stale" and rule.get("service", "*") in ("*", service):
                return rule
    return None


def _params(environ, body):
    return {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace") + "&" + environ.get("QUERY_STRING", "")).items()}


def _stale_keys_of_read(service, operation, environ, body):
    """The one resource a read observes, if it names exactly one."""
    if service == "ec2" and operation in ("DescribeInstances", "DescribeVolumes"):
        p = _params(environ, body)
        name = "InstanceId" if operation == "DescribeInstances" else "VolumeId"
        ids = [v for k, v in p.items() if re.fullmatch(name + r"\.\d+", k)]
        filters = {k for k in p if k.startswith("Filter.")}
        if len(ids) == 1 and not filters:
            return [("ec2", operation, ids[0])]
        # One filter naming one resource by its id (`instance-id` / `volume-id`, one value): as
        # eventually consistent as the same read by id.
        by_id = "instance-id" if operation == "DescribeInstances" else "volume-id"
        if not ids and filters == {"Filter.1.Name", "Filter.1.Value.1"} and p.get("Filter.1.Name") == by_id:
            return [("ec2", operation, p["Filter.1.Value.1"])]
        return []
    if service == "s3" and operation == "GetPublicAccessBlock":
        bucket = environ.get("PATH_INFO", "/").lstrip("/").split("/", 1)[0]
        return [("s3", "GetPublicAccessBlock", bucket)] if bucket else []
    if service == "dynamodb" and operation == "GetItem":
        req = json.loads(body or b"{}")
        if req.get("ConsistentRead"):
            return []
        return [("dynamodb", req.get("TableName"), json.dumps(req.get("Key"), sort_keys=True))]
    return []


def _stale_reads_of_write(service, operation, environ, body):
    """[(key, read environ builder)] for the resources a write changes."""
    out = []
    if service == "ec2" and operation in ("StopInstances", "StartInstances", "DeleteVolume", "CreateTags"):
        p = _params(environ, body)
        ids = [v for k, v in p.items() if re.fullmatch(r"(InstanceId|ResourceId)\.\d+", k)]
        if operation == "DeleteVolume":
            ids = [p.get("VolumeId", "")]
        for i in ids:
            read = "DescribeInstances" if i.startswith("i-") else "DescribeVolumes" if i.startswith("vol-") else None
            if read:
                name = "InstanceId" if read == "DescribeInstances" else "VolumeId"
                q = urllib.parse.urlencode({"Action": read, "Version": p.get("Version", "2016-11-15"), f"{name}.1": i})
                out.append((("ec2", read, i), ("POST", "/", "", q.encode(), "application/x-www-form-urlencoded", None)))
    elif service == "s3" and operation == "PutPublicAccessBlock":
        bucket = environ.get("PATH_INFO", "/").lstrip("/").split("/", 1)[0]
        out.append((("s3", "GetPublicAccessBlock", bucket), ("GET", "/" + bucket, "publicAccessBlock", b"", None, None)))
    elif service == "dynamodb" and operation in ("PutItem", "UpdateItem", "DeleteItem"):
        req = json.loads(body or b"{}")
        table = req.get("TableName")
        key = req.get("Key")
        if key is None and "Item" in req:
            try:
                from moto.dynamodb.models import dynamodb_backends
                t = dynamodb_backends[aws_iam.ACCOUNT][_region(environ)].get_table(table)
                names = [t.hash_key_attr] + ([t.range_key_attr] if t.range_key_attr else [])
                key = {n: req["Item"][n] for n in names if n in req["Item"]}
            except Exception:
                key = None
        if key is not None:
            read = json.dumps({"TableName": table, "Key": key}).encode()
            out.append((("dynamodb", table, json.dumps(key, sort_keys=True)),
                        ("POST", "/", "", read, "application/x-amz-json-1.0", "DynamoDB_20120810.GetItem")))
    return out


def _region(environ):
    m = re.search(r"Credential=[^/]+/[^/]+/([^/]+)/", environ.get("HTTP_AUTHORIZATION", ""))
    return m.group(1) if m else "us-east-1"


def _call(app, environ):
    """moto's answer to `environ`: (status, headers, body)."""
    got = {}

    def start(status, headers, exc_info=None):
        got["status"], got["headers"] = status, headers
        return lambda data: None

    result = _stock_call(app, environ, start)
    data = b"".join(result)
    if hasattr(result, "close"):
        result.close()
    return got.get("status", "500 Internal Server Error"), got.get("headers", []), data


def _stale_capture(app, service, operation, environ, body, rule):
    for key, (method, path, query, data, ctype, target) in _stale_reads_of_write(service, operation, environ, body):
        read = dict(environ)
        read.update({"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
                     "CONTENT_LENGTH": str(len(data)), "wsgi.input": io.BytesIO(data)})
        if ctype:
            read["CONTENT_TYPE"] = ctype
        if target:
            read["HTTP_X_AMZ_TARGET"] = target
        else:
            read.pop("HTTP_X_AMZ_TARGET", None)
        try:
            answer = _call(app, read)
        except Exception:  # noqa: BLE001 - no old state to serve, then
            continue
        if answer[0].startswith("200"):
            with _rules_lock:
                _stale[key] = (time.monotonic() + rule.get("window_ms", 3000) / 1000.0, answer)
    environ["wsgi.input"] = io.BytesIO(body)


def _stale_serve(rule, service, operation, environ, body, start_response):
    keys = _stale_keys_of_read(service, operation, environ, body)
    with _rules_lock:
        for key in keys:
            entry = _stale.get(key)
            if entry is None or entry[0] < time.monotonic():
                continue
            rule["seen"] += 1
            if rule["random"].random() < rule.get("share", 1.0):
                rule["injected"] += 1
                status, headers, data = entry[1]
                start_response(status, [(k, v) for k, v in headers if k.lower() != "content-length"]
                               + [("Content-Length", str(len(data)))])
                return [data]
    return None


# Lambda's GetAccountSettings, which moto does not serve (an operation moto lacks answers 500):
# answered in its real shape (https://docs.aws.amazon.com/lambda/latest/api/API_GetAccountSettings.html)
# with the quota `POST /_finops/lambda-settings {"concurrent_executions": N}` sets (1,000, the
# default quota, until then), after the IAM layer.
_lambda_quota = {"concurrent_executions": 1000}


def _lambda_settings(environ, start_response):
    if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == "/_finops/lambda-settings":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        _lambda_quota.update(json.loads(environ["wsgi.input"].read(length) or b"{}"))
    limit = int(_lambda_quota["concurrent_executions"])
    data = json.dumps({
        "AccountLimit": {"TotalCodeSize": 80530636800, "CodeSizeUnzipped": 262144000, "CodeSizeZipped": 52428800,
                         "ConcurrentExecutions": limit, "UnreservedConcurrentExecutions": limit},
        "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": 0},
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


# A hub function that assumes the member role in a member account gets credentials that this
# layer registers as that role (infra/member-role.yaml, resolved for the account): what the
# function does there is authorised as the member role, and the role's trust policy is checked
# before moto hands the credentials out.

def _assume_member_role(app, principal, environ, body, start_response):
    params = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}
    role_arn = params.get("RoleArn", "")
    m = re.match(r"arn:aws:iam::(\d{12}):role/(?:.*/)?([^/]+)$", role_arn)
    ask = principal.get("ask") or {}
    stack = ask.get("parameters") or {}
    role_name = stack.get("MemberRoleName", "FinOpsAutopilotMember")
    if not m or m.group(2) != role_name or m.group(1) == aws_iam.ACCOUNT:
        return None
    account = m.group(1)
    org = aws_iam._current_org_id() or "o-aaaaaaaaaa"
    role = aws_template.member_role(account, {"HubAccountId": aws_iam.ACCOUNT, "OrganizationId": org,
                                              # The member stacks' ExternalId is the deployment's
                                              # (a test that uses one registers it), never what the
                                              # request says: a dropped or wrong id must be refused.
                                              "ExternalId": ask.get("external_id", ""),
                                              "RoleName": role_name})
    with _rules_lock:
        faulted = any(r.get("service") == "sts" and r.get("operation", "*") in ("*", "AssumeRole")
                      and r.get("body_contains", "").encode() in body for r in _rules if r.get("fault") != "stale")
    if faulted:
        return None  # a fault rule of the test answers this one (AWS's refusal, a throttle)
    if not aws_iam.member_trust_allows(principal, role["trust"], role_arn, params.get("ExternalId")):
        aws_iam.refusals.append({"principal": principal["name"], "action": "sts:AssumeRole", "resource": role_arn,
                                 "why": "the member role's trust policy"})
        status, ctype, text = aws_iam.refusal("sts", principal, "sts:AssumeRole", role_arn, "implicit")
        data = text.encode()
        start_response(f"{status} Refused", [("Content-Type", ctype), ("Content-Length", str(len(data)))])
        return [data]
    status, headers, data = _call(app, environ)
    key = re.search(rb"<AccessKeyId>([^<]+)</AccessKeyId>", data)
    if status.startswith("200") and key:
        aws_iam.register(key.group(1).decode(), {"name": f"{principal['name']} in {account}", "role": role_name,
                                                 "statements": role["statements"], "account": account})
    start_response(status, [(k, v) for k, v in headers if k.lower() != "content-length"]
                   + [("Content-Length", str(len(data)))])
    return [data]


# What CloudWatch bills GetMetricData by: the metrics requested ($0.01 per 1,000), whatever the
# calls. Counted here, at the server, from each request's MetricDataQueries (query protocol).
_metrics = {"get_metric_data": 0, "metrics_requested": 0}
_metrics_lock = threading.Lock()
_QUERY_ID = re.compile(rb"MetricDataQueries\.member\.(\d+)\.Id=")


def _count_metrics(environ):
    if _service(environ) != "monitoring":
        return
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    if b"Action=GetMetricData" not in body:
        return
    queries = len(set(_QUERY_ID.findall(body)))
    with _metrics_lock:
        _metrics["get_metric_data"] += 1
        _metrics["metrics_requested"] += queries


def _metrics_control(environ, start_response):
    with _metrics_lock:
        if environ.get("REQUEST_METHOD") == "DELETE":
            for k in _metrics:
                _metrics[k] = 0
        data = json.dumps(_metrics).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def faulty_call(self, environ, start_response):
    path = environ.get("PATH_INFO")
    if path == "/_finops/cloudwatch":
        return _metrics_control(environ, start_response)
    _count_metrics(environ)
    if path == "/_finops/lambda-settings":
        return _lambda_settings(environ, start_response)
    if path == "/_finops/faults":
        return _control(environ, start_response)
    if path == "/_finops/iam":
        return _iam_control(environ, start_response)
    if path == "/_finops/template":
        return _template_control(environ, start_response)
    principal = aws_iam.principal_of(environ)[0]
    if not _rules and principal is None and not path.startswith("/2016-08-19/account-settings"):
        return _stock_call(self, environ, start_response)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    if principal is not None:
        refused = aws_iam.check(environ, body)
        if refused is not None:
            status, ctype, text = refused
            data = text.encode()
            start_response(f"{status} Refused", [("Content-Type", ctype), ("Content-Length", str(len(data))),
                                                 ("x-amzn-RequestId", "finops-iam-0000")])
            return [data]
    if path.rstrip("/") == "/2016-08-19/account-settings" and environ.get("REQUEST_METHOD") == "GET":
        return _lambda_settings(environ, start_response)
    if principal is not None and _service(environ) == "sts" and _operation(environ, body) == "AssumeRole":
        member = _assume_member_role(self, principal, environ, body, start_response)
        if member is not None:
            return member
    if not _rules:
        return _stock_call(self, environ, start_response)
    service, operation = _service(environ), _operation(environ, body)
    stale = _stale_rule(service)
    if stale is not None:
        served = _stale_serve(stale, service, operation, environ, body, start_response)
        if served is not None:
            return served
        _stale_capture(self, service, operation, environ, body, stale)
    chosen = None
    with _rules_lock:
        for rule in _rules:
            if rule.get("fault") == "stale":
                continue
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

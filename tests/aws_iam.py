"""IAM as AWS evaluates it, for the local AWS: each request signed with a registered principal's
access key is authorised against that principal's statements (the template's own, resolved by
`aws_template`) before moto sees it; a refusal is answered in the service's own error shape.

moto's own evaluator (INITIAL_NO_AUTH_ACTION_COUNT) checks actions and resources but evaluates no
condition (an Allow with a condition never matches, a Deny with one always does), so the template's
`dynamodb:LeadingKeys`, `aws:ResourceTag/...`, `aws:TagKeys`, `ec2:CreateAction` conditions need
this. The logic is AWS's (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
an explicit Deny wins, then an Allow, else the implicit deny. Conditions follow
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
and the multivalued-key rules of reference_policies_condition-single-vs-multi-valued-context-keys.html
(ForAllValues holds for an absent key; ForAnyValue does not; a negated operator holds for an
absent key). Transactions are authorised as the underlying PutItem/UpdateItem/DeleteItem/
ConditionCheckItem (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html).

Requests signed with any other key (the tests' seeders, moto's own `testing` key) are not checked.
"""

import fnmatch
import json
import re
import threading
import urllib.parse

ACCOUNT = "123456789012"

_principals = {}
_lock = threading.Lock()
# Every refusal, for the tests to read: (principal, action, resource, why).
refusals = []


def register(access_key, principal):
    """`principal`: {"name", "role", "statements"}."""
    with _lock:
        _principals[access_key] = principal


def clear():
    with _lock:
        _principals.clear()
        refusals.clear()


def principal_of(environ):
    signed = environ.get("HTTP_AUTHORIZATION", "")
    if not signed:
        # A presigned URL carries its credential in the query string.
        signed = "Credential=" + urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential", [""])[0]
    m = re.search(r"Credential=([^/]+)/[^/]+/([^/]+)/([^/]+)/aws4_request", signed)
    if not m:
        return None, "", ""
    with _lock:
        return _principals.get(m.group(1)), m.group(2), m.group(3)


# --- Matching ------------------------------------------------------------------------------

def _like(pattern, value, ignore_case=False):
    # IAM wildcards: * any run of characters (across ':' and '/'), ? one character.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


def _list(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _values_match(base, policy_value, value):
    p, v = str(policy_value), str(value)
    if base in ("StringEquals", "StringNotEquals", "ArnEquals", "ArnNotEquals"):
        return p == v
    if base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return p.lower() == v.lower()
    if base in ("StringLike", "StringNotLike", "ArnLike", "ArnNotLike"):
        return _like(p, v)
    if base == "Bool":
        return p.lower() == v.lower()
    raise ValueError(f"condition operator {base} is not evaluated here")


def _condition_holds(operator, key, policy_values, context):
    qualifier = ""
    if ":" in operator:
        qualifier, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists")
    base = operator[: -len("IfExists")] if if_exists else operator
    present = {k.lower(): v for k, v in context.items()}
    values = _list(present.get(key.lower()))
    absent = key.lower() not in present
    policy_values = _list(policy_values)
    if base == "Null":
        want_absent = str(policy_values[0]).lower() == "true"
        return (absent or not values) == want_absent
    negated = "Not" in base
    if qualifier == "ForAllValues":
        if absent or not values:
            return True
        hit = [any(_values_match(base, p, v) for p in policy_values) for v in values]
        return all(not h for h in hit) if negated else all(hit)
    if qualifier == "ForAnyValue":
        if absent or not values:
            return False
        hit = [any(_values_match(base, p, v) for p in policy_values) for v in values]
        return any(not h for h in hit) if negated else any(hit)
    if absent:
        return if_exists or negated
    hit = any(_values_match(base, p, v) for p in policy_values for v in values)
    return not hit if negated else hit


def _applies(statement, action, resource, context):
    if "Action" in statement:
        if not any(_like(a, action, ignore_case=True) for a in _list(statement["Action"])):
            return False
    elif "NotAction" in statement:
        if any(_like(a, action, ignore_case=True) for a in _list(statement["NotAction"])):
            return False
    if "Resource" in statement:
        if not any(_like(r, resource) for r in _list(statement["Resource"])):
            return False
    elif "NotResource" in statement:
        if any(_like(r, resource) for r in _list(statement["NotResource"])):
            return False
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, policy_values in keys.items():
            if not _condition_holds(operator, key, policy_values, context):
                return False
    return True


def decide(statements, action, resource, context):
    """"allow", or "explicit" (a Deny matched) or "implicit" (no Allow did)."""
    allowed = False
    for st in statements:
        if not _applies(st, action, resource, context):
            continue
        if st.get("Effect") == "Deny":
            return "explicit"
        if st.get("Effect") == "Allow":
            allowed = True
    return "allow" if allowed else "implicit"


# --- What a request asks for ---------------------------------------------------------------

def _attr(v):
    if isinstance(v, dict):
        for t in ("S", "N", "B"):
            if t in v:
                return str(v[t])
    return None


def _hash_key(table, account, region):
    try:
        from moto.dynamodb.models import dynamodb_backends
        return dynamodb_backends[account][region].get_table(table).hash_key_attr
    except Exception:  # an unknown table: moto answers ResourceNotFound itself
        return "pk"


def _leading_from_query(body, hash_key):
    expr = body.get("KeyConditionExpression") or ""
    names = body.get("ExpressionAttributeNames") or {}
    values = body.get("ExpressionAttributeValues") or {}
    for m in re.finditer(r"([#\w]+)\s*=\s*(:\w+)", expr):
        name = names.get(m.group(1), m.group(1))
        if name == hash_key:
            v = _attr(values.get(m.group(2)))
            return [v] if v is not None else []
    cond = (body.get("KeyConditions") or {}).get(hash_key) or {}
    return [x for x in (_attr(a) for a in cond.get("AttributeValueList") or []) if x is not None]


def _dynamodb(op, body, account, region):
    def table_arn(name):
        return f"arn:aws:dynamodb:{region}:{account}:table/{name}"

    def item_request(action, table, key_or_item):
        hk = _hash_key(table, account, region)
        lead = _attr((key_or_item or {}).get(hk))
        # An item request always names its partition key, so AWS always has LeadingKeys; one this
        # layer cannot read is given a value no policy grants (refused, never let through).
        return (f"dynamodb:{action}", table_arn(table), {"dynamodb:LeadingKeys": [lead if lead is not None else "\u0000unread"]})

    if op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem"):
        return [item_request(op, body.get("TableName", ""), body.get("Key") or body.get("Item"))]
    if op == "Query":
        table = body.get("TableName", "")
        leading = _leading_from_query(body, _hash_key(table, account, region)) or ["\u0000unread"]
        resource = table_arn(table) + (f"/index/{body['IndexName']}" if body.get("IndexName") else "")
        return [("dynamodb:Query", resource, {"dynamodb:LeadingKeys": leading})]
    if op == "TransactWriteItems":
        out = []
        for item in body.get("TransactItems") or []:
            for kind, action in (("Put", "PutItem"), ("Update", "UpdateItem"), ("Delete", "DeleteItem"),
                                 ("ConditionCheck", "ConditionCheckItem")):
                if kind in item:
                    sub = item[kind]
                    out.append(item_request(action, sub.get("TableName", ""), sub.get("Key") or sub.get("Item")))
        return out
    if op == "TransactGetItems":
        return [item_request("GetItem", i["Get"].get("TableName", ""), i["Get"].get("Key"))
                for i in body.get("TransactItems") or [] if "Get" in i]
    if op == "BatchWriteItem":
        # Authorised as dynamodb:BatchWriteItem (not the items' PutItem/DeleteItem), with the
        # items' partition keys as dynamodb:LeadingKeys.
        out = []
        for table, requests in (body.get("RequestItems") or {}).items():
            hk = _hash_key(table, account, region)
            leads = []
            for r in requests:
                item = (r.get("PutRequest") or {}).get("Item") or (r.get("DeleteRequest") or {}).get("Key") or {}
                lead = _attr(item.get(hk))
                if lead is not None:
                    leads.append(lead)
            out.append(("dynamodb:BatchWriteItem", table_arn(table), {"dynamodb:LeadingKeys": leads}))
        return out
    if op == "BatchGetItem":
        out = []
        for table, spec in (body.get("RequestItems") or {}).items():
            hk = _hash_key(table, account, region)
            leads = [x for x in (_attr(k.get(hk)) for k in spec.get("Keys") or []) if x is not None]
            out.append(("dynamodb:BatchGetItem", table_arn(table), {"dynamodb:LeadingKeys": leads}))
        return out
    if "TableName" in body:
        return [(f"dynamodb:{op}", table_arn(body["TableName"]), {})]
    return [(f"dynamodb:{op}", "*", {})]


def _ec2_tags(resource_id, account, region):
    try:
        from moto.ec2.models import ec2_backends
        return dict(ec2_backends[account][region].tags.get(resource_id, {}))
    except Exception:
        return {}


def _ec2_arn(resource_id, account, region):
    kind = {"i": "instance", "vol": "volume", "snap": "snapshot", "ami": "image", "sg": "security-group",
            "subnet": "subnet", "eni": "network-interface"}.get(resource_id.split("-", 1)[0], "resource")
    owner = "" if kind in ("snapshot", "image") else account
    return f"arn:aws:ec2:{region}:{owner}:{kind}/{resource_id}"


def _numbered(params, prefix):
    items = sorted((k, v) for k, v in params.items() if re.fullmatch(re.escape(prefix) + r"\.\d+", k))
    return [v for _, v in sorted(items, key=lambda kv: int(kv[0].rsplit(".", 1)[1]))]


def _tag_specs(params):
    """[(resource type, {key: value})] of TagSpecification.N."""
    out = []
    n = 1
    while f"TagSpecification.{n}.ResourceType" in params:
        tags = {}
        m = 1
        while f"TagSpecification.{n}.Tag.{m}.Key" in params:
            tags[params[f"TagSpecification.{n}.Tag.{m}.Key"]] = params.get(f"TagSpecification.{n}.Tag.{m}.Value", "")
            m += 1
        out.append((params[f"TagSpecification.{n}.ResourceType"], tags))
        n += 1
    return out


def _tag_context(tags):
    ctx = {"aws:TagKeys": list(tags)}
    for k, v in tags.items():
        ctx[f"aws:RequestTag/{k}"] = v
    return ctx


def _resource_tag_context(resource_id, account, region):
    return {f"aws:ResourceTag/{k}": v for k, v in _ec2_tags(resource_id, account, region).items()}


def _ec2(op, params, account, region):
    if op.startswith("Describe"):
        return [(f"ec2:{op}", "*", {})]
    out = []
    if op in ("StopInstances", "StartInstances", "TerminateInstances", "RebootInstances", "ModifyInstanceAttribute"):
        ids = _numbered(params, "InstanceId") or ([params["InstanceId"]] if "InstanceId" in params else [])
        for i in ids:
            out.append((f"ec2:{op}", _ec2_arn(i, account, region), _resource_tag_context(i, account, region)))
        return out
    if op == "DeleteVolume":
        v = params.get("VolumeId", "")
        return [("ec2:DeleteVolume", _ec2_arn(v, account, region), _resource_tag_context(v, account, region))]
    if op == "DeleteSnapshot":
        s = params.get("SnapshotId", "")
        return [("ec2:DeleteSnapshot", _ec2_arn(s, account, region), _resource_tag_context(s, account, region))]
    if op == "CreateSnapshot":
        v = params.get("VolumeId", "")
        out.append(("ec2:CreateSnapshot", _ec2_arn(v, account, region), _resource_tag_context(v, account, region)))
        out.append(("ec2:CreateSnapshot", f"arn:aws:ec2:{region}::snapshot/*", {}))
        for kind, tags in _tag_specs(params):
            ctx = {"ec2:CreateAction": "CreateSnapshot", **_tag_context(tags)}
            out.append(("ec2:CreateTags", f"arn:aws:ec2:{region}::snapshot/*", ctx))
        return out
    if op == "CreateVolume":
        out.append(("ec2:CreateVolume", f"arn:aws:ec2:{region}:{account}:volume/*", {}))
        if params.get("SnapshotId"):
            out.append(("ec2:CreateVolume", _ec2_arn(params["SnapshotId"], account, region), {}))
        for kind, tags in _tag_specs(params):
            ctx = {"ec2:CreateAction": "CreateVolume", **_tag_context(tags)}
            out.append(("ec2:CreateTags", f"arn:aws:ec2:{region}:{account}:volume/*", ctx))
        return out
    if op in ("CreateTags", "DeleteTags"):
        tags = {}
        n = 1
        while f"Tag.{n}.Key" in params:
            tags[params[f"Tag.{n}.Key"]] = params.get(f"Tag.{n}.Value", "")
            n += 1
        for r in _numbered(params, "ResourceId"):
            ctx = {**_resource_tag_context(r, account, region), **(_tag_context(tags) if tags else {})}
            out.append((f"ec2:{op}", _ec2_arn(r, account, region), ctx))
        return out
    return [(f"ec2:{op}", "*", {})]


_S3_BUCKET_SUB = {
    "tagging": ("GetBucketTagging", "PutBucketTagging", "PutBucketTagging"),
    "policy": ("GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy"),
    "policyStatus": ("GetBucketPolicyStatus", None, None),
    "acl": ("GetBucketAcl", "PutBucketAcl", None),
    "publicAccessBlock": ("GetBucketPublicAccessBlock", "PutBucketPublicAccessBlock", "PutBucketPublicAccessBlock"),
    "website": ("GetBucketWebsite", "PutBucketWebsite", "DeleteBucketWebsite"),
    "location": ("GetBucketLocation", None, None),
    "ownershipControls": ("GetBucketOwnershipControls", "PutBucketOwnershipControls", "PutBucketOwnershipControls"),
    "versioning": ("GetBucketVersioning", "PutBucketVersioning", None),
    "lifecycle": ("GetLifecycleConfiguration", "PutLifecycleConfiguration", "PutLifecycleConfiguration"),
    "encryption": ("GetEncryptionConfiguration", "PutEncryptionConfiguration", "PutEncryptionConfiguration"),
    "notification": ("GetBucketNotification", "PutBucketNotification", None),
    "cors": ("GetBucketCORS", "PutBucketCORS", "PutBucketCORS"),
    "logging": ("GetBucketLogging", "PutBucketLogging", None),
    "object-lock": ("GetBucketObjectLockConfiguration", "PutBucketObjectLockConfiguration", None),
}


def _s3(environ, region="us-east-1", account=ACCOUNT):
    method = environ.get("REQUEST_METHOD", "GET")
    path = urllib.parse.unquote(environ.get("PATH_INFO", "/"))
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if path.startswith("/v20180820/configuration/publicAccessBlock"):
        action = {"GET": "GetAccountPublicAccessBlock", "PUT": "PutAccountPublicAccessBlock",
                  "DELETE": "PutAccountPublicAccessBlock"}.get(method, "GetAccountPublicAccessBlock")
        return [(f"s3:{action}", "*", {})]
    access_point = re.fullmatch(r"/v20180820/accesspoint(?:/([^/]+)(/policy|/policyStatus)?)?/?", path)
    if access_point:
        # S3 Control's access points: listing and reading one are authorised on "*", its policy and
        # policy status on the access point's ARN (the Service Authorization Reference's resource types).
        name, sub = access_point.group(1), access_point.group(2)
        if name is None:
            return [("s3:ListAccessPoints" if method == "GET" else f"s3:{method}", "*", {})]
        arn = f"arn:aws:s3:{region}:{account}:accesspoint/{name}"
        if sub is None:
            action = {"GET": "GetAccessPoint", "PUT": "CreateAccessPoint", "DELETE": "DeleteAccessPoint"}.get(method)
            return [(f"s3:{action or method}", "*" if method == "GET" else arn, {})]
        if sub == "/policyStatus":
            return [("s3:GetAccessPointPolicyStatus", arn, {})]
        action = {"GET": "GetAccessPointPolicy", "PUT": "PutAccessPointPolicy",
                  "DELETE": "DeleteAccessPointPolicy"}.get(method)
        return [(f"s3:{action or method}", arn, {})]
    parts = path.lstrip("/").split("/", 1)
    bucket = parts[0]
    key = parts[1] if len(parts) > 1 else ""
    if not bucket:
        return [("s3:ListAllMyBuckets", "*", {})]
    bucket_arn = f"arn:aws:s3:::{bucket}"
    if key:
        object_arn = f"{bucket_arn}/{key}"
        if method in ("GET", "HEAD"):
            return [("s3:GetObject", object_arn, {})]
        if method in ("PUT", "POST"):
            return [("s3:PutObject", object_arn, {})]
        if method == "DELETE":
            return [("s3:DeleteObject", object_arn, {})]
    for sub, (get, put, delete) in _S3_BUCKET_SUB.items():
        if sub in query:
            action = {"GET": get, "HEAD": get, "PUT": put, "DELETE": delete}.get(method)
            return [(f"s3:{action or method}", bucket_arn, {})]
    if method == "POST" and "delete" in query:
        return [("s3:DeleteObject", f"{bucket_arn}/*", {})]
    action = {"GET": "ListBucket", "HEAD": "ListBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}.get(method)
    return [(f"s3:{action or method}", bucket_arn, {})]


def _org_context(arn):
    """aws:ResourceOrgID of the account that owns `arn`, when it is in the organisation."""
    m = re.match(r"arn:aws:iam::(\d{12}):", arn)
    if not m:
        return {}
    try:
        from moto.organizations.models import organizations_backends
        for backend in organizations_backends.values():
            for region_backend in backend.values() if hasattr(backend, "values") else [backend]:
                org = getattr(region_backend, "org", None)
                if org is None:
                    continue
                if any(a.id == m.group(1) for a in getattr(region_backend, "accounts", [])) or org.master_account_id == m.group(1):
                    return {"aws:ResourceOrgID": org.id}
    except Exception:
        pass
    return {}


def _topic_key(topic_arn, account, region):
    """The ARN of the customer managed key `topic_arn` is encrypted with, if any."""
    try:
        from moto.sns.models import sns_backends
        topic = sns_backends[account][region].topics.get(topic_arn)
        key = getattr(topic, "kms_master_key_id", "") or ""
    except Exception:
        return None
    if not key or key.startswith("alias/aws/"):
        return None  # AWS-managed keys: their own policy lets the account's principals use them via SNS
    if key.startswith("arn:"):
        return key
    try:
        from moto.kms.models import kms_backends
        return kms_backends[account][region].describe_key(key).arn
    except Exception:
        return f"arn:aws:kms:{region}:{account}:key/{key}"


def _secret_arn(secret_id, account, region):
    try:
        from moto.secretsmanager.models import secretsmanager_backends
        secret = secretsmanager_backends[account][region].secrets.get(secret_id)
        if secret is not None:
            return secret.arn
    except Exception:
        pass
    if secret_id.startswith("arn:"):
        return secret_id
    return f"arn:aws:secretsmanager:{region}:{account}:secret:{secret_id}"


_PREFIX = {"monitoring": "cloudwatch", "email": "ses", "execute-api": "execute-api"}
_QUERY = {"ec2", "sns", "monitoring", "sts", "iam", "sqs", "autoscaling", "rds", "elasticloadbalancing"}


def requests_of(service, region, account, environ, body):
    """What the request asks IAM for: [(action, resource, context)]."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if service == "s3":
        return _s3(environ, region, account)
    if target:
        op = target.rsplit(".", 1)[-1]
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = {}
        if service == "dynamodb":
            return _dynamodb(op, payload, account, region)
        prefix = _PREFIX.get(service, service)
        if service == "secretsmanager" and "SecretId" in payload:
            return [(f"secretsmanager:{op}", _secret_arn(payload["SecretId"], account, region), {})]
        if service == "states":
            arn = payload.get("stateMachineArn") or payload.get("executionArn") or "*"
            return [(f"states:{op}", arn, {})]
        if service == "sqs" and "QueueUrl" in payload:
            name = payload["QueueUrl"].rstrip("/").rsplit("/", 1)[-1]
            return [(f"sqs:{op}", f"arn:aws:sqs:{region}:{account}:{name}", {})]
        return [(f"{prefix}:{op}", "*", {})]
    params = {k: v[0] for k, v in urllib.parse.parse_qs(
        (body or b"").decode("utf-8", "replace") + "&" + environ.get("QUERY_STRING", "")).items()}
    op = params.get("Action", "")
    if service == "ec2":
        return _ec2(op, params, account, region)
    if service == "sns":
        action = "Publish" if op == "PublishBatch" else op
        arn = params.get("TopicArn") or params.get("TargetArn") or "*"
        out = [(f"sns:{action}", arn, {})]
        key = _topic_key(arn, account, region) if action == "Publish" else None
        if key:
            # A publisher to a topic encrypted with a customer managed key needs the key
            # (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html).
            via = {"kms:ViaService": f"sns.{region}.amazonaws.com"}
            out += [("kms:GenerateDataKey", key, via), ("kms:Decrypt", key, via)]
        return out
    if service == "sts":
        if op == "GetCallerIdentity":
            return []  # no permission needed, and no policy can deny it
        role = params.get("RoleArn", "*")
        return [(f"sts:{op}", role, _org_context(role))]
    if service == "sqs":
        url = params.get("QueueUrl", "")
        name = url.rstrip("/").rsplit("/", 1)[-1]
        return [(f"sqs:{op}", f"arn:aws:sqs:{region}:{account}:{name}" if name else "*", {})]
    prefix = _PREFIX.get(service, service)
    return [(f"{prefix}:{op}", "*", {})]


# --- The refusal, as each service says it --------------------------------------------------

_JSON_10 = {"dynamodb"}
_JSON_11 = {"secretsmanager", "ce", "config", "states", "organizations", "pricing", "sqs", "kms", "logs"}


def refusal(service, principal, action, resource, why):
    """(status, content type, body) of AWS's AccessDenied for this service."""
    who = f"arn:aws:sts::{ACCOUNT}:assumed-role/{principal['role']}/{principal['name']}"
    because = ("with an explicit deny in an identity-based policy" if why == "explicit"
               else f"because no identity-based policy allows the {action} action")
    message = f"User: {who} is not authorized to perform: {action} on resource: {resource} {because}"
    rid = "finops-iam-0000"
    if service in _JSON_10:
        return "400", "application/x-amz-json-1.0", json.dumps(
            {"__type": "com.amazon.coral.service#AccessDeniedException", "Message": message})
    if service in _JSON_11:
        return "400", "application/x-amz-json-1.1", json.dumps({"__type": "AccessDeniedException", "Message": message})
    esc = message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if service == "ec2":
        return "403", "text/xml", (
            "<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform "
            f"this operation. {esc}</Message></Error></Errors><RequestID>{rid}</RequestID></Response>")
    if service == "s3":
        return "403", "application/xml", (
            f"<Error><Code>AccessDenied</Code><Message>{esc}</Message><RequestId>{rid}</RequestId></Error>")
    code = "AuthorizationError" if service == "sns" else "AccessDenied"
    return "403", "text/xml", (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{esc}</Message></Error>"
        f"<RequestId>{rid}</RequestId></ErrorResponse>")


def _current_org_id():
    try:
        from moto.organizations.models import organizations_backends
        for backend in organizations_backends.values():
            for region_backend in backend.values() if hasattr(backend, "values") else [backend]:
                org = getattr(region_backend, "org", None)
                if org is not None:
                    return org.id
    except Exception:
        pass
    return None


def _statements(principal):
    """The principal's statements; organisation mode with `OrganizationId` "" is deployed in the
    organisation moto holds now (made after the principal was registered, in some tests)."""
    ask = principal.get("ask") or {}
    params = ask.get("parameters") or {}
    if params.get("EnableOrganization") != "true" or params.get("OrganizationId", "") != "":
        return principal["statements"]
    org = _current_org_id()
    if org is None:
        return principal["statements"]
    if principal.get("org") != org:
        resolved = principal["resolve"](ask["function"], dict(params, OrganizationId=org), ask.get("physical"))
        principal["statements"], principal["org"] = resolved["statements"], org
    return principal["statements"]


def _hub_principal_arn(principal):
    """The ARN IAM sees for a hub function's role (its RolePath in organisation mode)."""
    ask = principal.get("ask") or {}
    org = (ask.get("parameters") or {}).get("EnableOrganization") == "true"
    path = "finops-autopilot/" if org else ""
    return f"arn:aws:iam::{ACCOUNT}:role/{path}{principal['role']}"


def member_trust_allows(principal, trust, role_arn, external_id):
    """Whether the member role's trust policy lets this hub principal assume it."""
    context = {"aws:PrincipalArn": _hub_principal_arn(principal), "aws:PrincipalAccount": ACCOUNT}
    org = _current_org_id()
    if org:
        context["aws:PrincipalOrgID"] = org
    if external_id is not None:
        context["sts:ExternalId"] = external_id
    for st in trust:
        who = _list((st.get("Principal") or {}).get("AWS"))
        if not any(w in (f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT, "*") for w in who):
            continue
        if st.get("Effect") == "Allow" and _applies(dict(st, Resource=role_arn), "sts:AssumeRole", role_arn, context):
            return True
    return False


def check(environ, body):
    """None when the request may go on; else (status, content type, body) of its refusal."""
    principal, region, service = principal_of(environ)
    if principal is None:
        return None
    statements = _statements(principal)
    account = principal.get("account", ACCOUNT)
    for action, resource, context in requests_of(service, region, account, environ, body):
        try:
            why = decide(statements, action, resource, context)
        except ValueError:  # a condition operator this evaluator does not know: refuse, never allow
            why = "implicit"
        if why != "allow":
            refusals.append({"principal": principal["name"], "action": action, "resource": resource, "why": why})
            return refusal(service, principal, action, resource, why)
    return None

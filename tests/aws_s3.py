"""S3's own evaluation of a policy, as AWS documents it, for the local AWS.

`IsPublic` of GetBucketPolicyStatus and GetAccessPointPolicyStatus is S3's judgement of the policy
alone ("The meaning of 'public'" in
https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html):
S3 starts from "public" and calls a policy non-public only when every Allow in it grants access
to fixed values (no wildcard, no policy variable) of a principal, or of one of these condition
keys: aws:SourceIp (a set of CIDRs), aws:SourceArn, aws:SourceVpc, aws:SourceVpce, aws:SourceOwner,
aws:SourceAccount, s3:x-amz-server-side-encryption-aws-kms-key-id, aws:userid, aws:PrincipalOrgID
(and the other principal keys), s3:DataAccessPointAccount, and s3:DataAccessPointArn (whose access
point name may hold a wildcard when its account is fixed). An Allow with NotPrincipal grants
everyone it does not name: public unless such a condition confines it.

moto's evaluation calls any statement with a Condition private and ignores NotPrincipal, and its
access points' status is public for every policy; this module replaces both.
"""

import ipaddress
import json
import re

_FIXED_KEYS = {
    "aws:sourceip",
    "aws:sourcearn",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:sourceowner",
    "aws:sourceaccount",
    "s3:x-amz-server-side-encryption-aws-kms-key-id",
    "aws:userid",
    "aws:principalorgid",
    "aws:principalaccount",
    "aws:principalarn",
    "s3:dataaccesspointaccount",
    "s3:dataaccesspointarn",
}
# The operators that admit only the listed values; a negated one, `...IfExists` and `Null` admit a
# request without the key, as an anonymous one is.
_MATCHING = {"stringequals", "stringequalsignorecase", "stringlike", "arnequals", "arnlike", "ipaddress"}


def _values(v):
    return v if isinstance(v, list) else [v]


def _fixed(value):
    if isinstance(value, bool) or isinstance(value, (int, float)):
        return True
    if not isinstance(value, str):
        return False
    return "*" not in value and "?" not in value and "${" not in value


_MAPPED = ipaddress.ip_network("::ffff:0:0/96")


def _lets_everyone_in(values):
    """Whether the CIDRs let every address of either family in, however spelt."""
    v4, v6 = [], []
    for v in values:
        try:
            net = ipaddress.ip_network(str(v).strip(), strict=False)
        except ValueError:
            return True
        if net.version == 6 and net.prefixlen >= 96 and net.subnet_of(_MAPPED):
            net = ipaddress.ip_network(f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}")
        (v4 if net.version == 4 else v6).append(net)
    everything = [ipaddress.ip_network("0.0.0.0/0")], [ipaddress.ip_network("::/0")]
    return (list(ipaddress.collapse_addresses(v4)) == everything[0]
            or list(ipaddress.collapse_addresses(v6)) == everything[1])


def _fixed_access_point_arn(value):
    # arn:aws:s3:region:account:accesspoint/name: the name may hold a wildcard if the account is fixed.
    parts = str(value).split(":", 5)
    return (len(parts) == 6 and "${" not in str(value) and re.fullmatch(r"\d{12}", parts[4]) is not None
            and parts[5].startswith("accesspoint/"))


def _confines(operator, key, values):
    op = operator.lower()
    if op.startswith("foranyvalue:"):
        op = op[len("foranyvalue:"):]
    key = key.lower()
    if op not in _MATCHING or key not in _FIXED_KEYS:
        return False
    values = _values(values)
    if not values:
        return False
    if key == "aws:sourceip":
        return op == "ipaddress" and all(_fixed(v) for v in values) and not _lets_everyone_in(values)
    if key == "s3:dataaccesspointarn":
        return all(_fixed(v) or _fixed_access_point_arn(v) for v in values)
    return all(_fixed(v) for v in values)


def _fixed_principal(principal):
    if principal is None:
        # No principal grants nobody.
        return True
    if isinstance(principal, dict):
        return all(_fixed_principal(v) for v in principal.values())
    if isinstance(principal, list):
        return all(_fixed_principal(v) for v in principal)
    return _fixed(principal)


def _public_statement(statement):
    if statement.get("Effect") != "Allow":
        return False
    # NotPrincipal grants everyone but those it names: no fixed principal, so only a condition can
    # confine it.
    if "NotPrincipal" not in statement and _fixed_principal(statement.get("Principal")):
        return False
    conditions = statement.get("Condition") or {}
    if not isinstance(conditions, dict):
        return True
    return not any(
        _confines(operator, key, values)
        for operator, clauses in conditions.items() if isinstance(clauses, dict)
        for key, values in clauses.items()
    )


def policy_is_public(policy):
    """S3's `IsPublic` for a policy document (text or bytes)."""
    try:
        parsed = json.loads(policy)
    except (ValueError, TypeError):
        return False
    statements = parsed.get("Statement") if isinstance(parsed, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        return False
    return any(_public_statement(s) for s in statements if isinstance(s, dict))


def install():
    import moto.s3.responses as s3_responses
    from moto.core.responses import ActionResult
    from moto.s3control.responses import S3ControlResponse

    s3_responses.bucket_policy_is_public = policy_is_public

    def get_access_point_policy_status(self):
        account_id = self._get_param("AccountId")
        name = self._get_param("Name")
        policy = self.backend.get_access_point_policy(account_id, name)
        return ActionResult({"PolicyStatus": {"IsPublic": policy_is_public(policy)}})

    S3ControlResponse.get_access_point_policy_status = get_access_point_policy_status

    # S3 Control answers `<CreateAccessPointResult>`, `<ListAccessPointsResult>` and so on
    # (https://docs.aws.amazon.com/AmazonS3/latest/API/API_control_ListAccessPoints.html, "Response
    # Syntax"); moto names the root `...Response`, which the SDKs' XML parsers refuse.
    stock_call_action = S3ControlResponse.call_action

    def call_action(self):
        status, headers, body = stock_call_action(self)
        if isinstance(body, bytes):
            body = body.decode("utf-8")
        if isinstance(body, str):
            m = re.search(r"<(\w+)Response(\s[^>]*)?>", body)
            # Errors keep their `<ErrorResponse>` root, as S3 Control's are.
            if m and m.group(1) != "Error" and "/doc/2018-08-20/" in (m.group(2) or ""):
                name = m.group(1)
                body = body.replace(m.group(0), f"<{name}Result{m.group(2) or ''}>", 1)
                body = body.replace(f"</{name}Response>", f"</{name}Result>")
        return status, headers, body

    S3ControlResponse.call_action = call_action

"""The SAM template as a deployment would resolve it, for the local AWS that enforces it.

`resolve(parameters, physical)` reads `infra/template.yaml` (its own text, never a copy) and
resolves CloudFormation's intrinsic functions (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::If` with the
template's `Conditions`, `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Fn::Join`,
`Fn::Select`, `AWS::NoValue`) with:

- `parameters`: overrides of the template's `Parameters` (the rest take their defaults);
- `physical`: what each logical resource is where the tests run: `{"StateTable": "finops-state",
  "StateTable.Arn": "arn:aws:dynamodb:...", ...}` (a `Ref` of a resource, or `Logical.Attr`).

`function(name, parameters, physical)` gives one function (by its binary's name, as
`Metadata.BuildProperties.Binary` says) as deployed: whether its `Condition` deploys it, its
role's statements, its environment (the `Globals` merged under its own), its reserved
concurrency, timeout and memory, and its events. A reference the caller did not supply is an
error naming it: a test never runs under a policy it only half resolved.
"""

import os
import re

import yaml

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"

_HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(os.path.dirname(_HERE), "infra", "template.yaml")


class Unresolved(Exception):
    """A reference the caller gave no value for, or an intrinsic this resolver does not know."""


class _Loader(yaml.SafeLoader):
    pass


def _tag(name):
    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return construct


for _short, _long in [("Ref", "Ref"), ("GetAtt", "Fn::GetAtt"), ("Sub", "Fn::Sub"), ("If", "Fn::If"),
                      ("Equals", "Fn::Equals"), ("Not", "Fn::Not"), ("And", "Fn::And"), ("Or", "Fn::Or"),
                      ("Join", "Fn::Join"), ("Select", "Fn::Select"), ("Split", "Fn::Split"),
                      ("Condition", "Condition"), ("FindInMap", "Fn::FindInMap"), ("Base64", "Fn::Base64"),
                      ("GetAZs", "Fn::GetAZs"), ("ImportValue", "Fn::ImportValue")]:
    _Loader.add_constructor("!" + _short, _tag(_long))


def load(path=TEMPLATE):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_Loader)


_NO_VALUE = object()


class Resolver:
    def __init__(self, template, parameters=None, physical=None, stack_name="finops"):
        self.template = template
        self.physical = dict(physical or {})
        self.params = {}
        for name, spec in (template.get("Parameters") or {}).items():
            if "Default" in spec:
                self.params[name] = str(spec["Default"])
        for name, value in (parameters or {}).items():
            if name not in (template.get("Parameters") or {}):
                raise Unresolved(f"the template has no parameter {name}")
            self.params[name] = str(value)
        self.params.update({"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": PARTITION,
                            "AWS::StackName": stack_name, "AWS::URLSuffix": "amazonaws.com"})
        self.conditions = {}
        for name in (template.get("Conditions") or {}):
            self.condition(name)

    def condition(self, name):
        if name not in self.conditions:
            spec = (self.template.get("Conditions") or {}).get(name)
            if spec is None:
                raise Unresolved(f"no condition {name}")
            self.conditions[name] = bool(self.value(spec))
        return self.conditions[name]

    def ref(self, name):
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.params:
            return self.params[name]
        if name in self.physical:
            return self.physical[name]
        raise Unresolved(f"Ref {name}: no physical value given")

    def getatt(self, logical, attr):
        key = f"{logical}.{attr}"
        if key in self.physical:
            return self.physical[key]
        raise Unresolved(f"GetAtt {key}: no physical value given")

    def sub(self, text, variables):
        def one(m):
            inner = m.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            if inner in variables:
                return str(variables[inner])
            if "." in inner and not inner.startswith("AWS::"):
                logical, attr = inner.split(".", 1)
                return str(self.getatt(logical, attr))
            return str(self.ref(inner))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def value(self, v):
        if isinstance(v, list):
            out = [self.value(x) for x in v]
            return [x for x in out if x is not _NO_VALUE]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (k, arg), = v.items()
            if k == "Ref":
                return self.ref(arg)
            if k == "Fn::GetAtt":
                parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.getatt(parts[0], parts[1])
            if k == "Fn::Sub":
                if isinstance(arg, list):
                    variables = {name: self.value(x) for name, x in arg[1].items()}
                    return self.sub(arg[0], variables)
                return self.sub(arg, {})
            if k == "Fn::If":
                name, yes, no = arg
                return self.value(yes if self.condition(name) else no)
            if k == "Fn::Equals":
                a, b = (self.value(x) for x in arg)
                return str(a) == str(b)
            if k == "Fn::Not":
                return not self.value(arg[0])
            if k == "Fn::And":
                return all(self.value(x) for x in arg)
            if k == "Fn::Or":
                return any(self.value(x) for x in arg)
            if k == "Condition":
                return self.condition(arg)
            if k == "Fn::Join":
                sep, items = arg
                return sep.join(str(x) for x in self.value(items))
            if k == "Fn::Select":
                index, items = arg
                return self.value(items)[int(self.value(index))]
            if k.startswith("Fn::"):
                raise Unresolved(f"{k} is not resolved here")
        out = {}
        for k, x in v.items():
            r = self.value(x)
            if r is not _NO_VALUE:
                out[k] = r
        return out


def _name(r):
    """A function's name here: its binary, or `Metadata.FinOpsFunction` for a second function of
    the same binary (the approval function's executor)."""
    meta = r.get("Metadata") or {}
    return meta.get("FinOpsFunction") or (meta.get("BuildProperties") or {}).get("Binary")


def _by_binary(template, name):
    for logical, r in (template.get("Resources") or {}).items():
        if r.get("Type") != "AWS::Serverless::Function":
            continue
        if _name(r) == name:
            return logical, r
    raise Unresolved(f"the template deploys no function {name}")


def _role_owner(template, logical, props):
    """The function whose SAM-made role `logical` uses: itself, or the one its `Role:
    !GetAtt <Other>Role.Arn` names (the role's statements are that function's `Policies`)."""
    role = props.get("Role")
    if isinstance(role, dict) and "Fn::GetAtt" in role:
        target = role["Fn::GetAtt"]
        target = target.split(".")[0] if isinstance(target, str) else target[0]
        owner = target[: -len("Role")] if target.endswith("Role") else target
        r = (template.get("Resources") or {}).get(owner)
        if r is not None:
            return owner, r.get("Properties") or {}
    return logical, props


def function(name, parameters=None, physical=None, template=None):
    """One function as the template deploys it, resolved."""
    template = template or load()
    resolver = Resolver(template, parameters, physical)
    logical, r = _by_binary(template, name)
    props = r.get("Properties") or {}
    glob = (template.get("Globals") or {}).get("Function") or {}
    deployed = resolver.condition(r["Condition"]) if "Condition" in r else True
    env = {}
    if deployed:
        for source in (glob, props):
            env.update(resolver.value(((source.get("Environment") or {}).get("Variables")) or {}))
    statements = []
    role_logical, role_props = _role_owner(template, logical, props)
    if deployed:
        for policy in role_props.get("Policies") or []:
            if isinstance(policy, dict) and "Statement" in policy:
                statements += resolver.value(policy["Statement"])
    if deployed:
        # Managed policies the template attaches to this function's role (SAM names it <Logical>Role).
        for other in (template.get("Resources") or {}).values():
            if other.get("Type") != "AWS::IAM::ManagedPolicy":
                continue
            if "Condition" in other and not resolver.condition(other["Condition"]):
                continue
            roles = (other.get("Properties") or {}).get("Roles") or []
            if {"Ref": role_logical + "Role"} in roles:
                statements += resolver.value(other["Properties"]["PolicyDocument"]["Statement"])
    reserved = resolver.value(props["ReservedConcurrentExecutions"]) if deployed and "ReservedConcurrentExecutions" in props else None
    return {
        "logical": logical,
        "binary": ((r.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary"),
        "deployed": deployed,
        "statements": statements,
        "environment": {k: str(v) for k, v in env.items()},
        "reserved_concurrency": None if reserved is None or reserved is _NO_VALUE else int(reserved),
        "timeout": int(resolver.value(props.get("Timeout", glob.get("Timeout", 3)))),
        "memory": int(resolver.value(props.get("MemorySize", glob.get("MemorySize", 128)))),
        "events": resolver.value(props.get("Events") or {}) if deployed else {},
    }


MEMBER_TEMPLATE = os.path.join(os.path.dirname(_HERE), "infra", "member-role.yaml")


def member_role(account, parameters):
    """infra/member-role.yaml's role as deployed in `account` (StackSets): its inline statements
    and its trust policy, resolved with `parameters` (HubAccountId, OrganizationId, ExternalId,
    RoleName)."""
    template = load(MEMBER_TEMPLATE)
    resolver = Resolver(template, parameters, {})
    resolver.params["AWS::AccountId"] = account
    role = template["Resources"]["MemberRole"]["Properties"]
    statements = []
    for policy in role.get("Policies") or []:
        statements += resolver.value(policy["PolicyDocument"]["Statement"])
    trust = resolver.value(role["AssumeRolePolicyDocument"]["Statement"])
    return {"statements": statements, "trust": trust, "name": resolver.value(role["RoleName"])}


def functions(parameters=None, physical=None):
    """Every function the template declares, by binary name."""
    template = load()
    names = [_name(r) for r in (template.get("Resources") or {}).values()
             if r.get("Type") == "AWS::Serverless::Function"]
    return {n: function(n, parameters, physical, template) for n in names if n}

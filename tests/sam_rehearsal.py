"""The deploy rehearsal: infra/template.yaml transformed to CloudFormation offline, by the SAM
translator `sam validate` and `sam deploy` use (aws-sam-translator, from the SAM CLI's venv), with
the given parameters. Prints the CloudFormation template as JSON; `tests/tests/deploy.rs` checks
it against what the code needs.

Usage: .venv-sam/bin/python tests/sam_rehearsal.py '{"EnableJira": "true"}'
"""

import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(os.path.dirname(HERE), "infra", "template.yaml")


class ManagedPolicies:
    """The AWS managed policies SAM attaches by name (offline: their well-known ARNs)."""

    def load(self):
        names = ["AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess", "AWSLambdaSQSQueueExecutionRole"]
        return {n: f"arn:aws:iam::aws:policy/service-role/{n}" for n in names}


def main():
    overrides = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(TEMPLATE, encoding="utf-8") as f:
        sam = yaml_parse(f.read())
    # As `sam package` leaves it: the built code uploaded, its local path replaced by an S3 URI.
    sam["Globals"]["Function"]["CodeUri"] = "s3://finops-artifacts/bootstrap.zip"
    parameters = {"SecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:finops-AbCdEf"}
    parameters.update(overrides)
    # The translator resolves the parameters it must (SAM's own properties); the rest stay
    # CloudFormation intrinsics, as in a real deployment.
    parameters.update({"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws",
                       "AWS::StackName": "finops-autopilot", "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/finops-autopilot/x",
                       "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": None})
    out = transform(sam, parameters, ManagedPolicies())
    json.dump(out, sys.stdout, indent=1, sort_keys=True, default=str)


if __name__ == "__main__":
    main()

"""The identity behind an emulated AWS call: each Lambda function, Batch job and state machine execution signs
its calls with an access key id that names its role, so that the router can tell who called, in which account
(the role's), and emulator/iam_check.py can evaluate the call against that role's policies.

The key id is `ASIA` (AWS's prefix of temporary credentials, which Lambda, ECS task roles and Step Functions
get) followed by the role ARN in base32, without padding: reversible without a table shared between the
emulator's processes. moto accepts any key id but files a key it did not issue under its default account; the
router therefore tells moto the role's account with moto's own per-request override, ACCOUNT_HEADER, which moto
5.2.5 reads ahead of the access key. The same header puts a test's or an operator's client (dummy credentials,
no identity) in another account (control.py's `client(account=…)`).
"""

import base64
import re

PREFIX = "ASIA"
# The secret is never checked (moto does not verify signatures); the same for every identity.
SECRET = "emulated"
ACCOUNT_HEADER = "x-moto-account-id"


def access_key(role_arn: str) -> str:
    return PREFIX + base64.b32encode(role_arn.encode()).decode().rstrip("=")


def role_of(key_id: str) -> str | None:
    """The role ARN `key_id` was made from, or None for any other key (a test's or an operator's)."""
    if not key_id.startswith(PREFIX):
        return None
    encoded = key_id[len(PREFIX):]
    try:
        role_arn = base64.b32decode(encoded + "=" * (-len(encoded) % 8)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return role_arn if role_arn.startswith("arn:") else None


def role_of_request(headers) -> str | None:
    """The role whose key signed the request (SigV4's `Credential=KEY/…`), or None."""
    key = re.search(r"Credential=([^/]+)/", headers.get("Authorization", ""))
    return role_of(key.group(1)) if key else None


def account_of(role_arn: str) -> str:
    return role_arn.split(":")[4]


def credentials(role_arn: str) -> dict:
    """The environment variables of a process that runs as `role_arn`."""
    return {"AWS_ACCESS_KEY_ID": access_key(role_arn), "AWS_SECRET_ACCESS_KEY": SECRET}


def in_account(client, account: str):
    """`client` (boto3), its every request made in `account` (ACCOUNT_HEADER)."""
    def add_header(request, **_):
        request.headers[ACCOUNT_HEADER] = account

    client.meta.events.register("before-sign", add_header)
    return client

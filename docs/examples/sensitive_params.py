"""A parameter model with a secret: declare it with ``sensitive()``."""

from pydantic import SecretStr

from kubernaut.actions import ActionParams, sensitive
from kubernaut.kube.names import NamespaceName, ObjectName


class ResetPasswordParams(ActionParams):
    namespace: NamespaceName
    secret: ObjectName
    # Masked in logs, never stored in clear in XCom or the history. SecretStr also keeps it
    # out of repr() and tracebacks in your own code.
    new_password: SecretStr = sensitive(description="The new password")

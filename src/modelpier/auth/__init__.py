"""Identity and access: users, hashed API tokens, project roles, quotas, the audit log.

Sits below the control plane and above the registry. Pure decisions (``access.decide_access``,
``quota.check_quota``, ``tokens``) are separate from the SQL store (``auth/sql``) and from the
service that wires them (``service.AuthService``). The control plane and gateway call in; nothing
here imports a web framework.
"""

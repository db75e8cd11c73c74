"""Deployments as the control plane keeps them: the service every door uses (``service``: apply,
rollback, delete, status), its store protocol and records (``state``), revision history rules
(``history``), quotas (``quota``), rollout progress (``progress``), replica logs (``logs``), the
alias follower (``alias_poller``) and the ModelDeployment resources' port (``custom_resources``)."""

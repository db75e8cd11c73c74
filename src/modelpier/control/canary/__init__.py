"""Progressive canaries: the pure step plan (``plan``) and the judgement of a run interrupted by a
restart (``resume``), the persisted records (``state``) and the effectful driver that moves traffic and
applies revisions (``driver``)."""

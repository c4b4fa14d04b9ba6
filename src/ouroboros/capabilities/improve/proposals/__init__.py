"""Proposals: findings in, governed changes to a target repository out.

- :mod:`.proposal` (the record and its markdown) and :mod:`.store` (the proposals repo);
- :mod:`.planner` (rule templates), :mod:`.diffs`, :mod:`.yamledit`;
- :mod:`.repo` (the target git repository), :mod:`.validation` (test gate),
  :mod:`.policy` (audit gate), :mod:`.governance` (the kernel ``file`` type);
- :mod:`.loop` (the orchestration), :mod:`.monitor`, :mod:`.breakers`,
  :mod:`.notify`, :mod:`.chat`.
"""

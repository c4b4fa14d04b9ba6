"""Proposals: findings in, governed changes to a target repository (or to the kernel's
own state) out.

- :mod:`.proposal` (the record and its markdown) and :mod:`.store` (the proposals repo);
- writing: :mod:`.planner` (rule templates), :mod:`.writer` (rules or the LLM WriterAgent),
  :mod:`.preflight` (the gates on a candidate diff), :mod:`.state` (kernel-state rules),
  :mod:`.diffs`, :mod:`.yamledit`;
- the target: :mod:`.repo` (git plumbing), :mod:`.remote` (clone, push, fetch, merge
  checks), :mod:`.target_config` (the repository's schemas and policy), :mod:`.forge`
  (GitHub/GitLab pull requests), :mod:`.publish` (branches, pull requests, deploys);
- the gates: :mod:`.validation` (test), :mod:`.policy` (audit), :mod:`.branch_gates`,
  :mod:`.governance` (the kernel ``file`` type);
- the loop: :mod:`.loop` (orchestration), :mod:`.landing` (merge, deploy, revert),
  :mod:`.state_flow`, :mod:`.monitor`, :mod:`.breakers`, :mod:`.notify`, :mod:`.chat`,
  :mod:`.slack` (the slash-command webhook).
"""

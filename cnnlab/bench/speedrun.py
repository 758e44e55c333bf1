"""A speedrun's target and time limit: fields of its config, which the command line may override.

experiments/speedrun_91.py, speedrun_93.py and speedrun_94.py set `speedrun.target` (the test
accuracy every seed must reach) and `speedrun.time_limit_s` (within how many seconds from a cold
process; a seed's run stops at the first epoch that ends past them; 0 = no limit).
"""

from cnnlab.errors import UserError


def settings(config, target=None, time_limit=None):
  """(target, limit in seconds or None): `target`/`time_limit` when given (the command's
  --target/--time_limit), else the config's speedrun fields; one UserError line otherwise."""
  fields = config.get("speedrun") or {}
  target = fields.get("target") if target is None else target
  if target is None:
    raise UserError("the config sets no speedrun target (config.speedrun.target); pass "
                    "--target=0.91, or a speedrun config, e.g. "
                    "--config=experiments/speedrun_91.py")
  if not 0.0 < target < 1.0:
    raise UserError(f"the speedrun target {target} must be a test accuracy in (0, 1), "
                    "e.g. --target=0.91")
  limit = fields.get("time_limit_s", 0.0) if time_limit is None else time_limit
  if limit < 0:
    raise UserError(f"the time limit {limit} must be seconds >= 0 (0 = no limit), e.g. "
                    "--time_limit=20")
  return target, limit or None

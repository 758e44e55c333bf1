"""The one exception type for mistakes a user can fix (bad config, flag, file, shape).

The shell entry turns it into one line on stderr and exit code 2; anything else is a bug
and keeps its traceback. It subclasses ValueError so library callers can catch it as such.
"""

import difflib
import errno
import logging
import sys

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class UserError(ValueError):
  """A problem in the user's input, with a message that names the fix."""


def closest(name, choices):
  """' (did you mean X?)' for the nearest of `choices`, or '' when nothing is near."""
  match = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
  return f" (did you mean {match[0]!r}?)" if match else ""


def is_disk_full(err):
  """True for "no space left" / "quota exceeded", as OSError or as text (TensorStore)."""
  if isinstance(err, OSError) and err.errno in _DISK_FULL:
    return True
  text = str(err)
  return "No space left on device" in text or "Disk quota exceeded" in text


def warn(message):
  """A warning line on stderr (warnings never go through a command's `log`)."""
  print(message, file=sys.stderr, flush=True)


def quiet_background_tracebacks():
  """Process-wide, for commands (cli/common.setup_jax calls it): drop the tracebacks that
  Orbax's background threads print for a full disk or a failed checkpoint restore, which
  cnnlab.checkpoint already reports in one line. Importing cnnlab changes nothing."""
  logging.getLogger("absl").addFilter(_quiet_disk_full)
  logging.getLogger("asyncio").addFilter(_quiet_orphaned_reads)
  _quiet_closed_loop()


def _quiet_disk_full(record):
  """Orbax's background tracebacks for a full disk."""
  return not (record.exc_info and is_disk_full(record.exc_info[1]))


def _quiet_orphaned_reads(record):
  """asyncio's "Task (or Future) exception was never retrieved" for the reads a failed
  restore leaves behind (Orbax starts one per array)."""
  return not str(record.msg).startswith(("Task exception was never retrieved",
                                         "Future exception was never retrieved"))


def _quiet_closed_loop():
  """After a failed restore, TensorStore completes orphaned reads into Orbax's closed event
  loop, and each prints a traceback ("Event loop is closed")."""
  previous = sys.unraisablehook
  if getattr(previous, "cnnlab", False):
    return

  def hook(unraisable):
    err = unraisable.exc_value
    if not (isinstance(err, RuntimeError) and str(err) == "Event loop is closed"):
      previous(unraisable)

  hook.cnnlab = True
  sys.unraisablehook = hook

"""The one exception type for mistakes a user can fix (bad config, flag, file, shape).

The shell entry turns it into one line on stderr and exit code 2; anything else is a bug
and keeps its traceback. It subclasses ValueError so library callers can catch it as such.
"""

import difflib
import errno
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

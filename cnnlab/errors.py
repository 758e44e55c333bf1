"""The one exception type for mistakes a user can fix (bad config, flag, file, shape).

The shell entry turns it into one line on stderr and exit code 2; anything else is a bug
and keeps its traceback. It subclasses ValueError so library callers can catch it as such.
"""

import difflib


class UserError(ValueError):
  """A problem in the user's input, with a message that names the fix."""


def closest(name, choices):
  """' (did you mean X?)' for the nearest of `choices`, or '' when nothing is near."""
  match = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
  return f" (did you mean {match[0]!r}?)" if match else ""

"""The shell commands, one file each (see __main__.py); common.py holds what they share."""

"""The shapes of project slugs, task keys and bug keys.

Plain regular expressions with no other imports, so the `wf` command can validate arguments without
loading the command models (which costs a noticeable part of a second on every call).
"""

from __future__ import annotations

import re

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
# [0-9], not \d (which matches every script's digits); at most 9 digits, so a key is short and sane.
TASK_KEY = re.compile(r"^T-[0-9]{3,9}$")
BUG_KEY = re.compile(r"^B-[0-9]{3,9}$")

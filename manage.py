#!/usr/bin/env python
"""Thin shim: ``python manage.py …`` is ``closedloop …``."""

import sys

from closedloop.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
